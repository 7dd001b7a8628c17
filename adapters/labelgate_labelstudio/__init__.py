"""labelgate_labelstudio adapter."""
