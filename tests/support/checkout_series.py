"""Prometheus samples of the checkout service as Flagger deploys it, for the docs' commands.

``checkout_samples(end)``: 70 minutes up to ``end`` (one sample every 30 s) of the series
examples/configs/checkout-flagger.yaml queries, for the pods of namespace ``shop`` that
Flagger names ``checkout-primary-<hash>-<id>`` (the baseline) and ``checkout-<hash>-<id>``
(the canary): ``http_request_duration_seconds_bucket`` (a cumulative histogram) and
``http_requests_total`` by status code. The canary behaves like the primary (the same load,
latency profile and 1% of 5xx, independent noise from a fixed seed): a healthy canary, which
the config passes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from tests.support.prometheus import Sample

NAMESPACE = "shop"
PODS = {"baseline": "checkout-primary-7d9f8c6b5-x2x9q", "canary": "checkout-6b7c9d8f4-k3j2m"}
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)
SHARE_AT_MOST = (0.30, 0.70, 0.95, 0.99, 0.999)
"""Share of requests at most each bucket's bound (then all of them, ``+Inf``)."""
REQUESTS_PER_STEP = 600.0
ERROR_SHARE = 0.01
STEP_SECONDS = 30
MINUTES = 70


def checkout_samples(end: datetime, *, seed: int = 20260105) -> list[Sample]:
    rng = np.random.default_rng(seed)
    start = end - timedelta(minutes=MINUTES)
    samples = []
    for pod in PODS.values():
        labels = {"namespace": NAMESPACE, "pod": pod}
        requests = errors = 0.0
        buckets = [0.0] * (len(BUCKETS) + 1)
        for k in range(MINUTES * 60 // STEP_SECONDS + 1):
            at = (start + timedelta(seconds=STEP_SECONDS * k)).timestamp()
            arrived = float(rng.poisson(REQUESTS_PER_STEP))
            failed = float(rng.binomial(int(arrived), ERROR_SHARE))
            requests += arrived
            errors += failed
            shares = np.clip(np.array(SHARE_AT_MOST) + rng.normal(0, 0.005, len(BUCKETS)), 0, 1)
            for i, share in enumerate((*np.maximum.accumulate(shares), 1.0)):
                buckets[i] += round(arrived * float(share))
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), buckets, strict=True):
                samples.append(Sample("http_request_duration_seconds_bucket",
                                      {**labels, "le": bound}, at, count))
            samples.append(Sample("http_requests_total", {**labels, "code": "200"}, at,
                                  requests - errors))
            samples.append(Sample("http_requests_total", {**labels, "code": "500"}, at, errors))
    return samples

