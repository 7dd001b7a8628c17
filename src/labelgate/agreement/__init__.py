"""Agreement between annotators: categorical coefficients, spatial agreement, consensus."""

from labelgate.agreement.categorical import (
    Coefficient,
    bootstrap,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    marginals,
    per_class_agreement,
    percent_agreement,
)

__all__ = [
    "Coefficient",
    "bootstrap",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac1",
    "krippendorff_alpha",
    "marginals",
    "per_class_agreement",
    "percent_agreement",
]
