"""Majority vote and Dawid-Skene on simulated annotators with known confusion."""

import numpy as np
import pytest

from labelgate.consensus import DawidSkene, MajorityVote
from labelgate.errors import ValidationError


def _simulate(seed=0, n=3000, k=3, accuracies=(0.9, 0.85, 0.6, 0.35, 0.35)):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    codes = np.empty((n, len(accuracies)), dtype=np.int64)
    for a, acc in enumerate(accuracies):
        right = rng.random(n) < acc
        codes[:, a] = np.where(right, truth, (truth + rng.integers(1, k, n)) % k)
    codes[rng.random(codes.shape) < 0.1] = -1
    return truth, codes


def test_majority_vote_ties_and_confidence():
    codes = np.array([[0, 0, 1], [1, 0, -1], [-1, -1, -1], [2, 2, 2]])
    mv = MajorityVote(n_classes=3).fit(codes)
    assert mv.labels_.tolist() == [0, 0, -1, 2]  # tie 1-vs-0 goes to the lower class
    np.testing.assert_allclose(mv.confidence_, [2 / 3, 0.5, 0.0, 1.0])


def test_dawid_skene_recovers_annotator_accuracies_and_beats_majority():
    truth, codes = _simulate()
    ds = DawidSkene().fit(codes)
    diag = np.array([np.trace(m) / 3 for m in ds.confusions_])
    np.testing.assert_allclose(diag, [0.9, 0.85, 0.6, 0.35, 0.35], atol=0.04)
    ds_acc = (ds.labels_ == truth).mean()
    mv_acc = (MajorityVote().fit_predict(codes) == truth).mean()
    assert ds_acc > mv_acc
    np.testing.assert_allclose(ds.posteriors_.sum(1), 1.0)
    np.testing.assert_allclose(ds.priors_, np.bincount(truth) / len(truth), atol=0.03)


def test_anchoring_on_known_items_holds_them_fixed():
    truth, codes = _simulate(n=500)
    known = {i: int((truth[i] + 1) % 3) for i in range(20)}  # deliberately "wrong" gold
    ds = DawidSkene().fit(codes, known=known)
    assert all(ds.labels_[i] == v for i, v in known.items())
    with pytest.raises(ValidationError, match=r"classes must lie in 0\.\.2"):
        DawidSkene().fit(codes, known={0: 7})


def test_one_annotator_and_empty_items():
    codes = np.array([[0], [1], [-1]])
    ds = DawidSkene(n_classes=2).fit(codes)
    assert ds.labels_.tolist() == [0, 1, -1]
    assert not np.isnan(ds.posteriors_).any()


def test_majority_skills_are_agreement_with_the_majority():
    codes = np.array([[0, 0, 1], [1, 1, 1], [2, 2, 0], [0, -1, -1]])
    mv = MajorityVote(n_classes=3).fit(codes)
    # labels 0, 1, 2, 0 -> a agrees 4/4, b 3/3, c 1/3.
    np.testing.assert_allclose(mv.skills_, [1.0, 1.0, 1 / 3])
    assert np.isnan(MajorityVote().fit(np.array([[0, -1], [1, -1]])).skills_[1])


def test_dawid_skene_confusions_match_the_returned_posteriors():
    _, codes = _simulate(n=400)
    ds = DawidSkene(smoothing=0.0)
    proba = ds.fit_predict_proba(codes)
    # M-step by hand from the returned posteriors: e[a, k, l] = sum_i p_ik [code_ia = l] / ...
    for a in range(codes.shape[1]):
        seen = codes[:, a] >= 0
        by_hand = np.stack([proba[seen][codes[seen, a] == lab].sum(0) for lab in range(3)], 1)
        by_hand /= by_hand.sum(1, keepdims=True)
        np.testing.assert_allclose(ds.confusions_[a], by_hand, atol=1e-12)
    with pytest.raises(ValidationError, match="item index 900 is out of range"):
        DawidSkene().fit(codes, known={900: 0})


def test_one_class_only_is_defined():
    codes = np.zeros((5, 3), dtype=int)
    ds = DawidSkene().fit(codes)
    assert ds.labels_.tolist() == [0] * 5 and np.allclose(ds.posteriors_, 1.0)
    assert MajorityVote().fit(codes).confidence_.tolist() == [1.0] * 5
