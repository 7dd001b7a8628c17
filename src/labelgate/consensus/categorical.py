"""Categorical consensus: majority vote and Dawid-Skene EM on an (items × annotators) code matrix.

Estimators follow the ``fit`` / ``fit_predict`` convention. Codes are 0..K-1, -1 for missing.
"""

from __future__ import annotations

import numpy as np

from labelgate.agreement.categorical import check_codes, counts_table
from labelgate.arrays import AnyArray, FloatArray, IntArray
from labelgate.errors import ValidationError


class MajorityVote:
    """Most frequent label per item; ties go to the lowest class index (deterministic).

    After ``fit``: ``labels_`` (items,; -1 where nobody rated), ``confidence_`` (winning share),
    ``skills_`` (annotators,; agreement of each annotator with the majority labels).
    """

    def __init__(self, n_classes: int | None = None) -> None:
        self.n_classes = n_classes

    def fit(self, codes: AnyArray) -> MajorityVote:
        c, k = check_codes(codes, self.n_classes)
        t = counts_table(c, k)
        m = t.sum(1)
        self.labels_ = np.where(m > 0, t.argmax(1), -1)
        self.confidence_ = np.where(m > 0, t.max(1) / np.maximum(m, 1), 0.0)
        # skills_: each annotator's share of answers equal to the majority label (crowd-kit's
        # MV skills; NaN for an annotator who answered nothing).
        answered = c >= 0
        agree = (c == self.labels_[:, None]) & answered
        n_ans = answered.sum(0)
        self.skills_ = np.where(n_ans > 0, agree.sum(0) / np.maximum(n_ans, 1), np.nan)
        return self

    def fit_predict(self, codes: AnyArray) -> IntArray:
        """Fit and return the majority label per item (-1 for items nobody rated)."""
        return self.fit(codes).labels_


class DawidSkene:
    """Dawid-Skene EM: per-annotator confusion matrices and per-item class posteriors.

    Args:
        n_classes: K (inferred from the codes when None).
        max_iter, tol: EM stopping rule on the change of the posteriors.
        smoothing: pseudo-count added to every confusion cell (keeps log terms finite).

    After ``fit``: ``posteriors_`` (items, K), ``labels_``, ``priors_`` (K,), ``confusions_``
    (annotators, K true, K given; rows sum to 1), ``n_iter_``.
    """

    def __init__(
        self,
        n_classes: int | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
        smoothing: float = 0.01,
    ) -> None:
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing

    def fit(self, codes: AnyArray, known: dict[int, int] | None = None) -> DawidSkene:
        """Run EM. ``known`` maps item index → true class (GT anchoring: held fixed).

        Raises:
            ValidationError: a known class is outside 0..K-1 or an item index is out of range.
        """
        c, k = check_codes(codes, self.n_classes)
        n, a = c.shape
        onehot = np.zeros((n, a, k))
        obs = c >= 0
        ii, aa = np.nonzero(obs)
        onehot[ii, aa, c[ii, aa]] = 1.0
        post = counts_table(c, k) + 1e-9
        post /= post.sum(1, keepdims=True)
        anchor_idx: IntArray = np.zeros(0, np.int64)
        anchor_val: FloatArray = np.zeros((0, k))
        if known:
            anchor_idx = np.fromiter(known.keys(), np.int64)
            cls = np.fromiter(known.values(), np.int64)
            bad = anchor_idx[(anchor_idx < 0) | (anchor_idx >= n)]
            if len(bad):
                raise ValidationError(
                    f"known: item index {int(bad[0])} is out of range (0..{n - 1})"
                )
            if cls.min(initial=0) < 0 or cls.max(initial=0) >= k:
                raise ValidationError(f"known: classes must lie in 0..{k - 1}")
            anchor_val = np.eye(k)[cls]
            post[anchor_idx] = anchor_val
        n_iter = 0
        conf = np.zeros((a, k, k))
        for _ in range(self.max_iter):
            n_iter += 1
            priors = post.mean(0)
            conf = np.einsum("ik,ial->akl", post, onehot) + self.smoothing
            conf /= conf.sum(2, keepdims=True)
            log_post = np.log(np.maximum(priors, 1e-300)) + np.einsum(
                "ial,akl->ik", onehot, np.log(conf)
            )
            log_post -= log_post.max(1, keepdims=True)
            new = np.exp(log_post)
            new /= new.sum(1, keepdims=True)
            if len(anchor_idx):
                new[anchor_idx] = anchor_val
            delta = float(np.abs(new - post).max())
            post = new
            if delta < self.tol:
                break
        # Final M-step so the confusion matrices belong to the reported posteriors.
        conf = np.einsum("ik,ial->akl", post, onehot) + self.smoothing
        conf /= conf.sum(2, keepdims=True)
        self.posteriors_ = post
        self.labels_ = np.where(obs.any(1), post.argmax(1), -1)
        self.priors_ = post.mean(0)
        self.confusions_ = conf
        self.n_iter_ = n_iter
        return self

    def fit_predict(self, codes: AnyArray, known: dict[int, int] | None = None) -> IntArray:
        """Fit and return the posterior mode per item (-1 for items nobody rated)."""
        return self.fit(codes, known).labels_

    def fit_predict_proba(self, codes: AnyArray, known: dict[int, int] | None = None) -> FloatArray:
        """Fit and return the (items, K) class posteriors."""
        return self.fit(codes, known).posteriors_
