"""Carrier scoring against the simulator's ground truth (issue 7): after enough shipments the
engine's learned lane quantiles are within 5 % of the true ones, the return-carrier choice made
from them is the one the truth would make, and the learned shock rates order the carriers as
their true damage rates do.

Real parts only: the Rust simulator's feed through the engine's Arrow path, the engine's
LaneTable, and the control plane's ScoringChooser over the sample tariffs. The figures are
printed (``pytest -s``); ``pytest -m soak`` runs them on a network of 13 province pairs.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist, fmean, median, quantiles
from typing import Any, TypeVar

import msgspec
import pytest

from streamguard import Engine, LaneTable
from streamguard.domain.insurance import Tariffs
from streamguard.domain.returns import (
    LaneEstimate,
    ReturnRequest,
    ScoringChooser,
    Weights,
)
from streamguard.sim import Simulator, example_rules

T = TypeVar("T")
Lane = tuple[str, str, str]

HOUR_MS = 3_600_000
#: The engine's forward-decay half-life and SLA (README, "Carrier scoring").
HALF_LIFE_MS = 14 * 24 * HOUR_MS
SLA_MS = 72 * HOUR_MS
#: What issue 7 asks: a learned quantile within 5 % of the truth.
TOLERANCE = math.log(1.05)
#: The quantile sketch's relative accuracy: its error lies anywhere within +-1 % (sd 1 %/sqrt 3).
SKETCH_ALPHA = 0.01
#: How many standard errors of noise a lane with enough data keeps within the tolerance.
K_SD = 3.0
NORMAL = NormalDist()


@dataclass(frozen=True)
class Feed:
    seed: int
    #: Shipments of the transit feed: scans only (no sensor budget), as timing is all it needs.
    shipments: int
    #: One depot and a few customer provinces bound the lanes: 8 carriers x 2 x customers
    #: province pairs (one fewer if the depot's province is a customer), so each lane of a
    #: feed this size has thousands of shipments (carriers' shares: 25 % SF .. 5 % DBL).
    depots: tuple[str, ...]
    customers: tuple[str, ...]
    #: Shipments of the sensor-rich feed the shock rates are learned from.
    shock_shipments: int


# Wuhan and its neighbours Henan and Hunan, both ways: 4 pairs, 32 lanes.
QUICK = Feed(7, 900_000, ("CN-42",), ("CN-41", "CN-43"), 60_000)
# 13 pairs (104 lanes) out to Beijing, Shanghai, Fujian and Sichuan; ~3.5 minutes.
SOAK = Feed(
    7,
    6_000_000,
    ("CN-42",),
    ("CN-11", "CN-31", "CN-35", "CN-41", "CN-43", "CN-51", "CN-42"),
    300_000,
)


def shock_rules() -> dict[str, Any]:
    """The example rule set's ``shock-3g`` alone: a drop (the simulator's damage) is one reading
    above 3 g. ``fragile-shock-2g`` would add 2-3 g knocks whatever the carrier, and the dwell
    rules only cost time here."""
    doc: dict[str, Any] = json.loads(example_rules())
    doc["rules"] = [r for r in doc["rules"] if r["id"] == "shock-3g"]
    return doc


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one made on another thread while the caller uses this one: the
    simulator and the engine both release the GIL, so a feed takes the slower, not the sum."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(next, items, None)
        while (item := ahead.result()) is not None:
            ahead = pool.submit(next, items, None)
            yield item


def learn(sim: Simulator) -> LaneTable:
    engine = Engine(shock_rules())
    for batch in prefetched(sim.record_batches(16_384)):
        engine.process(batch, validate=False)
    return engine.lanes()


@pytest.fixture(
    scope="module",
    params=[QUICK, pytest.param(SOAK, marks=pytest.mark.soak)],
    ids=["quick", "soak"],
)
def feed(request: pytest.FixtureRequest) -> Feed:
    f: Feed = request.param
    return f


# ---- 1. learned quantiles against the true ones --------------------------------------------


def tilted_quantile(median_ms: float, sigma: float, p: float) -> float:
    """The p-quantile of the lane's log-normal weighted by e^(lam T), lam = ln 2 / half-life.

    Why the engine learns this and not the truth: it weighs a transit time T by its delivery
    time s + T (forward decay), and this feed creates its shipments over 7 days (the
    simulator's fixed window, half a half-life) and runs until every one is delivered. So in
    every pickup cohort a slow shipment weighs e^(lam T) more than a fast one. In a live stream
    the latest cohorts' slow shipments are still on the way, which cancels it; a feed run to
    its end has nothing to cancel it (stopping early would instead censor slow ones far more).
    """
    lam = math.log(2) / HALF_LIFE_MS
    steps, lo, hi = 4_000, -8.0, 8.0
    h = (hi - lo) / steps
    zs = [lo + i * h for i in range(steps + 1)]
    dens = [NORMAL.pdf(z) * math.exp(lam * median_ms * math.exp(sigma * z)) for z in zs]
    cum = [0.0]
    for a, b in itertools.pairwise(dens):
        cum.append(cum[-1] + (a + b) * h / 2)
    target = p * cum[-1]
    i = bisect.bisect_left(cum, target)
    z = zs[i - 1] + h * (target - cum[i - 1]) / (cum[i] - cum[i - 1])
    return median_ms * math.exp(sigma * z)


def quantile_sd(p: float, sigma: float, n_eff: float) -> float:
    """Standard error of ln(sample p-quantile) of a log-normal: sqrt(p(1-p)/n) sigma/phi(z_p)."""
    return math.sqrt(p * (1 - p) / n_eff) * sigma / NORMAL.pdf(NORMAL.inv_cdf(p))


@dataclass(frozen=True)
class Check:
    """One learned quantile of one lane against the truth, all in ln."""

    lane: Lane
    p: float
    #: ln(learned / true).
    error: float
    #: What this feed should teach, as ln(x / true): the tilt, plus the pull toward the
    #: carrier (empirical Bayes: the lane weighs n/(n+10)). No noise in it.
    bias: float
    #: Standard error of ln(learned): sampling and the sketch.
    noise: float
    shipments: float

    @property
    def enough_data(self) -> bool:
        """Whether the known bias plus K_SD standard errors fit in the 5 %: the lane is tested
        against the requirement only then."""
        return abs(self.bias) + K_SD * self.noise <= TOLERANCE

    @property
    def z(self) -> float:
        return (self.error - self.bias) / self.noise


def checks(table: LaneTable, truths: list[dict[str, Any]]) -> list[Check]:
    out: list[Check] = []
    for t in truths:
        lane: Lane = (t["carrier"], t["origin"], t["dest"])
        est = table.estimate(*lane)
        carrier = table.estimate(t["carrier"])
        assert est is not None, lane
        assert carrier is not None, lane
        n, w = est["shipments"], est["lane_weight"]
        for p, key in ((0.5, "p50_ms"), (0.9, "p90_ms")):
            tilted = math.log(tilted_quantile(t["p50_ms"], t["sigma"], p) / t[key])
            carrier_q = math.log(carrier[key] / t[key])
            # n_eff: Kish's (sum w)^2 / sum w^2 is at least sum w (the decayed count) when every
            # weight is at most 1, as here; the 2 x decayed count of a stream many half-lives
            # long does not apply to a 7-day feed, so the decayed count is the safe side.
            sampling = w * quantile_sd(p, t["sigma"], n)
            out.append(
                Check(
                    lane=lane,
                    p=p,
                    error=math.log(est[key] / t[key]),
                    bias=w * tilted + (1 - w) * carrier_q,
                    noise=math.hypot(sampling, SKETCH_ALPHA / math.sqrt(3)),
                    shipments=n,
                )
            )
    return out


@dataclass(frozen=True)
class Learned:
    feed: Feed
    table: LaneTable
    truths: list[dict[str, Any]]
    checks: list[Check]
    #: Lanes whose p50 and p90 both have enough data.
    enough: set[Lane]


@pytest.fixture(scope="module")
def learned(feed: Feed) -> Learned:
    # events=shipments is below what the scans alone take: no sensor readings at all.
    sim = Simulator(
        seed=feed.seed,
        shipments=feed.shipments,
        events=feed.shipments,
        invalid_rate=0.0,
        depots=feed.depots,
        customer_provinces=feed.customers,
    )
    table, truths = learn(sim), sim.lane_truths()
    cs = checks(table, truths)
    enough = {c.lane for c in cs} - {c.lane for c in cs if not c.enough_data}
    return Learned(feed, table, truths, cs, enough)


def pct(x: float) -> str:
    return f"{100 * x:+.2f} %"


def spread(errors: list[float]) -> str:
    rel = [abs(math.expm1(e)) for e in errors]
    p95 = quantiles(rel, n=20)[18] if len(rel) > 1 else rel[0]
    return (
        f"|error| median {100 * median(rel):.2f} %, p95 {100 * p95:.2f} %, "
        f"max {100 * max(rel):.2f} %"
    )


def test_learned_lane_quantiles_are_within_5_percent_of_the_truth(learned: Learned) -> None:
    cs, enough = learned.checks, learned.enough
    lanes = {c.lane for c in cs}
    tested = [c for c in cs if c.lane in enough]
    print(
        f"\n[{learned.feed.shipments:,} shipments] {len(enough)} of {len(lanes)} lanes "
        "with enough data"
    )
    for p in (0.5, 0.9):
        mine = [c for c in tested if c.p == p]
        print(
            f"  p{p * 100:.0f}: {spread([c.error for c in mine])}; mean error "
            f"{pct(fmean(math.expm1(c.error) for c in mine))} (tilt + pull "
            f"{pct(fmean(math.expm1(c.bias) for c in mine))}); max |z| after them "
            f"{max(abs(c.z) for c in mine):.2f}"
        )
    print(
        f"  decayed shipments per lane: {min(c.shipments for c in cs):,.0f} .. "
        f"{max(c.shipments for c in cs):,.0f}"
    )
    # The feed is sized so that (nearly) every lane is tested: a pass is never vacuous.
    assert len(enough) >= 0.9 * len(lanes), sorted(lanes - enough)
    outside = [(c.lane, c.p, pct(math.expm1(c.error))) for c in tested if abs(c.error) > TOLERANCE]
    assert not outside
    # Sharper than 5 %: every lane learns what this feed should teach, within noise.
    unexplained = [(c.lane, c.p, round(c.z, 2)) for c in cs if abs(c.z) > 4.0]
    assert not unexplained


# ---- 2. the top-ranked carrier against the truly best --------------------------------------

#: Quality (shock and dwell alerts) has no clean truth (dwell alerts depend on the rules'
#: thresholds and the normal scan gaps): ranked on time, cost and coverage only.
WEIGHTS = {
    "defaults-without-quality": Weights(quality=0.0),
    "time-only": Weights(cost=0.0, time=1.0, coverage=0.0, quality=0.0),
}
#: Returns (declared value in fen, fragile) that leave different carriers eligible (insurable
#: maximum, shock-proof packaging): all eight; all but STO; SF JD EMS ZTO DBL; SF JD EMS DBL;
#: the shock-proof SF JD ZTO DBL; SF JD DBL.
REQUESTS = (
    (30_000, False),
    (150_000, False),
    (250_000, False),
    (500_000, False),
    (50_000, True),
    (500_000, True),
)
#: The sketch's accuracy: a true gap a 1 % error on each of the top two can close is a tie.
NEAR_TIE = 0.01


class LearnedLanes:
    """The engine's table as the control plane reads it (bus/lanes.py)."""

    def __init__(self, table: LaneTable) -> None:
        self.table = table

    def estimate(self, carrier: str, origin: str, dest: str) -> LaneEstimate | None:
        found = self.table.estimate(carrier, origin, dest)
        return None if found is None else msgspec.convert(found, LaneEstimate)


class TrueLanes:
    """The simulator's truth as a lane source; ``scale`` stretches carriers' transit times."""

    def __init__(
        self, truths: list[dict[str, Any]], scale: Mapping[str, float] | None = None
    ) -> None:
        self.truths = {(t["carrier"], t["origin"], t["dest"]): t for t in truths}
        self.scale = scale or {}

    def estimate(self, carrier: str, origin: str, dest: str) -> LaneEstimate | None:
        t = self.truths.get((carrier, origin[:5], dest[:5]))
        if t is None:
            return None
        s = self.scale.get(carrier, 1.0)
        on_time = NORMAL.cdf(math.log(SLA_MS / t["p50_ms"]) / t["sigma"])
        return LaneEstimate(
            p50_ms=t["p50_ms"] * s,
            p90_ms=t["p90_ms"] * s,
            on_time_rate=on_time,
            dwell_per_shipment=0.0,
            shock_per_shipment=0.0,
            shipments=math.inf,
            lane_weight=1.0,
        )


@pytest.mark.parametrize("weights", WEIGHTS.values(), ids=WEIGHTS.keys())
def test_the_top_ranked_carrier_is_the_truly_best(learned: Learned, weights: Weights) -> None:
    tariffs = Tariffs.load_sample()
    assert {t["carrier"] for t in learned.truths} <= set(tariffs), "a carrier without a tariff"
    enough = learned.enough
    by_engine = ScoringChooser(tariffs, LearnedLanes(learned.table))
    by_truth = ScoringChooser(tariffs, TrueLanes(learned.truths))
    pairs = sorted({(t["origin"], t["dest"]) for t in learned.truths})
    cases = agree = near_ties = other_way = 0
    wrong: list[str] = []
    for origin, dest in pairs:
        for value, fragile in REQUESTS:
            req = ReturnRequest(origin=origin, dest=dest, declared_value_fen=value, fragile=fragile)
            want = by_truth.choose(req, weights)
            eligible = [o.carrier for o in want.options if o.eligible]
            if len(eligible) < 2 or any((c, origin, dest) not in enough for c in eligible):
                continue
            best, runner_up = eligible[:2]
            swap = {best: 1 + NEAR_TIE, runner_up: 1 - NEAR_TIE}
            tie = ScoringChooser(tariffs, TrueLanes(learned.truths, swap)).choose(req, weights)
            near = tie.chosen != best
            got = by_engine.choose(req, weights).chosen
            cases += 1
            near_ties += near
            if got == best or (near and got == runner_up):
                agree += 1
                other_way += got != best
            else:
                wrong.append(
                    f"{origin}->{dest} {value / 100:.0f} CNY fragile={fragile}: "
                    f"{got} chosen, {best} is best ({want.explanation})"
                )
    total = len(pairs) * len(REQUESTS)
    print(
        f"\n[{learned.feed.shipments:,} shipments] {weights.as_dict()}: top carrier right in "
        f"{agree}/{cases} ({100 * agree / max(cases, 1):.1f} %), near-ties {near_ties} "
        f"({other_way} decided for the runner-up), "
        f"{total - cases} of {total} cases without enough data"
    )
    assert cases >= 0.9 * total
    assert agree >= 0.95 * cases, wrong


# ---- 3. learned shock rates against the true damage rates -----------------------------------


def ranks(xs: list[float]) -> list[float]:
    """Ranks from 1, ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float:
    rx, ry = ranks(xs), ranks(ys)
    mx, my = fmean(rx), fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy)


def test_learned_shock_rates_order_carriers_as_their_damage_rates(feed: Feed) -> None:
    # 60 events per shipment: every tagged shipment (55 %) uploads about two bursts, so a
    # drop reaches the engine whatever the lane's transit time; with fewer, short (fast)
    # lanes would upload nothing more often, and speed would pass for care.
    sim = Simulator(
        seed=feed.seed + 1,
        shipments=feed.shock_shipments,
        events=60 * feed.shock_shipments,
        invalid_rate=0.0,
        depots=feed.depots,
        customer_provinces=feed.customers,
    )
    table = learn(sim)
    damage = {t["carrier"]: t["damage_rate"] for t in sim.lane_truths()}
    carriers = sorted(damage, key=damage.__getitem__)
    shock: dict[str, float] = {}
    for c in carriers:
        est = table.estimate(c)
        assert est is not None, c
        shock[c] = est["shock_per_shipment"]
    rho = spearman([damage[c] for c in carriers], [shock[c] for c in carriers])
    print(
        f"\n[{feed.shock_shipments:,} shipments] shock episodes per shipment / damage rate: "
        + ", ".join(f"{c} {shock[c]:.4f}/{damage[c]:.2f}" for c in carriers)
        + f"; Spearman {rho:.3f}"
    )
    assert all(shock[c] > 0 for c in carriers)
    # One swap of neighbours gives 0.976; a random order has sd 0.38 around 0.
    assert rho >= 0.9
