"""Expected overload a shard brings to each host it could join, from the forecast quantiles.

A host is overloaded in an hour when its shards' cpu use exceeds what it can give them (the
outlook's supply). Each shard's use that hour has the point forecast as mean and as standard
deviation the distance to the interval's upper bound read as `z` standard deviations of a
normal, or with `planning.measured_spread` the forecast's residual standard deviation
measured on the backtest where it has one (`outlook.demand_sd`); shards vary
independently, so a host's use, a sum, is taken as normal with the summed means and
variances.

For a candidate (shard s, other host h) the expected overloaded
shard-hours s brings there are, summed over the horizon's hours,

    P(h over with s) + n_h * (P(h over with s) - P(h over without s))

its own hours on an overloaded host plus the extra risk for the n_h shards already there;
staying brings nothing new (0). Priced at OVERLOAD_SHARE of the hour's downtime per overloaded
shard-hour (what the backtest charges), this is the `headroom_risk` term, so a move for price
pays for the overload risk it takes to its target.

With `planning.burst_risk` a host's use also bursts: each shard's burst rate and mean excess
are measured on its history (`bursts.shard_bursts`), and in a burst hour the host's use is
higher by its shards' rate-weighted mean excess (`_p_over`: bursts arrive as a Poisson
stream, one at a time).

What a shard's leaving takes off its current host is not a cost term: shards of one
overloaded host would each be credited the whole relief though one move may give it, and the
placement model, separable per candidate, would move them all. Relief is decided jointly by
the capacity rows, at the host's pooled upper quantile (`scoring.problem.pooled_demand`); the
relief one move alone would give (`relief_hours`, the same formula on the current host) only
bounds what a relief move may cost (`ShardDemand.relief`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr

from skyshard.scoring.bursts import shard_bursts
from skyshard.scoring.data import PlanningData
from skyshard.scoring.outlook import Outlook, demand_sd

# An overloaded shard-hour loses this share of the hour to downtime (throttling, restarts,
# shed requests); the backtest charges the same.
OVERLOAD_SHARE = 0.1
# Pairs x hours evaluated at once (bounded memory at 10,000 shards x 200 hosts).
_CHUNK_CELLS = 4_000_000


def overload_unit_cost(downtime_cost_per_second: float) -> float:
    """Cost of one overloaded shard-hour."""
    return 3600 * OVERLOAD_SHARE * downtime_cost_per_second


def _over(supply: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """P(normal(mean, var) > supply); a certain outcome where var is 0."""
    sd = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (supply - mean) / sd
    certain = np.where(mean > supply + 1e-9, 1.0, 0.0)
    return np.where(sd > 1e-9, ndtr(-z), certain)


def _p_over(
    supply: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    burst: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    """`_over` for a host whose shards also burst: `burst` = (summed burst rates, summed
    rate x excess) of its shards, broadcastable to `mean`. Bursts arrive as a Poisson
    stream, so some shard bursts in an hour with probability 1 - exp(-rate); the use is
    then higher by the rate-weighted mean excess (one burst at a time)."""
    body = _over(supply, mean, var)
    if burst is None:
        return body
    rate, mass = burst
    rate = np.maximum(rate, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.where(rate > 0, mass / rate, 0.0)
    bursting = -np.expm1(-rate)
    return (1 - bursting) * body + bursting * _over(supply, mean + excess, var)


def _with_and_without(
    others_rate: np.ndarray, others_mass: np.ndarray, rate: np.ndarray, mass: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The `burst` arguments of `_p_over` for a host with a shard (its `rate` and `mass`
    added to the others') and without it, with a trailing hours axis."""
    return (
        ((others_rate + rate)[..., None], (others_mass + mass)[..., None]),
        (others_rate[..., None], others_mass[..., None]),
    )


def _added(with_s: np.ndarray, without: np.ndarray, n_others: np.ndarray) -> np.ndarray:
    """Overloaded shard-hours over the last axis (hours): the shard's own plus the extra risk
    for the `n_others` shards beside it."""
    return with_s.sum(axis=-1) + n_others * np.clip(with_s - without, 0.0, None).sum(axis=-1)


@dataclass(frozen=True)
class _HostBursts:
    """Burst rate and rate x excess of the wanted shards (`rate`, `mass`) and summed over
    each host's shards (`host_rate`, `host_mass`)."""

    rate: np.ndarray
    mass: np.ndarray
    host_rate: np.ndarray
    host_mass: np.ndarray


def _host_bursts(
    data: PlanningData, everyone: list[str], current: np.ndarray, wanted: np.ndarray, hosts: int
) -> _HostBursts:
    """The bursts of `everyone` (host index `current`, -1 for none) measured on the usage,
    kept for the `wanted` positions and summed per host."""
    found = shard_bursts(data.usage, everyone)
    mass = found.rate * found.excess
    on = current >= 0
    host_rate = np.bincount(current[on], weights=found.rate[on], minlength=hosts)
    host_mass = np.bincount(current[on], weights=mass[on], minlength=hosts)
    return _HostBursts(found.rate[wanted], mass[wanted], host_rate, host_mass)


def _relief(
    spread: float,
    supply: np.ndarray,
    load: tuple[np.ndarray, np.ndarray, np.ndarray],
    mean: np.ndarray,
    var: np.ndarray,
    current: np.ndarray,
    over_now: np.ndarray,
    bursts: _HostBursts | None,
) -> np.ndarray:
    """(shards,) overloaded shard-hours a shard's leaving alone takes off its current host
    (`load`: every host's summed means, variances and shard count), with the forecast spread
    scaled by `spread` (policy `planning.relief_spread`; 0: at the point forecasts, the
    overload the move certainly removes) on hosts that are not over capacity now, and by 1
    on those that are (`over_now`, per host): a move pays for itself on the relief it is
    sure of, not on a normal tail that is pessimistic for on/off workloads, but a host
    overloaded at the last observed hour is relieved as the full spread says."""
    host_load, host_var, count = load
    on = current >= 0
    host = np.where(on, current, 0)
    shrink = np.where(over_now[host], 1.0, spread**2)[:, None]
    with_burst = without_burst = None
    if bursts is not None:
        # bursts, like the spread, count at `spread` on hosts within capacity now
        scale = np.where(over_now[host], 1.0, spread)
        with_burst, without_burst = _with_and_without(
            scale * (bursts.host_rate[host] - bursts.rate),
            scale * (bursts.host_mass[host] - bursts.mass),
            scale * bursts.rate,
            scale * bursts.mass,
        )
    with_s = _p_over(supply[host], host_load[host], shrink * host_var[host], with_burst)
    without = _p_over(
        supply[host], host_load[host] - mean, shrink * (host_var[host] - var), without_burst
    )
    return np.where(on, _added(with_s, without, count[host] - 1), 0.0)


def overloaded_now(data: PlanningData, hosts: list[str]) -> np.ndarray:
    """(hosts,) whether each host's cpu was over capacity (free capacity below 0) at the last
    hour it reported."""
    last = (
        data.capacity.group_by("host_id")
        .agg(pl.col("cpu_free").sort_by("hour").last())
        .filter(pl.col("cpu_free") < 0)
    )
    over = set(last["host_id"])
    return np.array([h in over for h in hosts], dtype=bool)


def _dense(
    frame: pl.DataFrame, key: str, ids: list[str], steps: int, columns: list[str]
) -> list[np.ndarray]:
    """(ids, steps) arrays of the cpu rows' `columns` (0 where a row is missing)."""
    grid = (
        pl.DataFrame({key: ids})
        .join(pl.DataFrame({"step": pl.int_range(1, steps + 1, eager=True)}), how="cross")
        .join(frame.filter(pl.col("resource") == "cpu"), on=[key, "step"], how="left")
        .sort(key, "step")
    )
    return [grid[c].fill_null(0.0).to_numpy().reshape(len(ids), steps) for c in columns]


def expected_overload(
    data: PlanningData,
    outlook: Outlook,
    interval: float,
    shard_ids: list[str],
    relief_spread: float = 1.0,
    measured_spread: bool = False,
    burst_risk: bool = True,
) -> pl.DataFrame:
    """`shard_id, host_id, overload_hours, overload_p, relief_hours` for every shard in
    `shard_ids` x host: expected overloaded shard-hours the shard brings there over the
    horizon (see the module docstring), its own mean hourly probability of sitting on an
    overloaded host there, and (the same on each of its rows) the overloaded shard-hours its
    leaving alone would take off its current host, judged at `relief_spread` times the
    forecast spread (see `_relief`); the spread is the forecasts' measured one with
    `measured_spread` (see `outlook.demand_sd`)."""
    steps = outlook.horizon_h
    hosts = sorted(data.hosts["host_id"])
    host_index = {h: i for i, h in enumerate(hosts)}
    everyone = sorted(data.shards["shard_id"])
    demand = outlook.demand.with_columns(sd=demand_sd(interval, measured_spread))
    mean, sd = _dense(demand, "shard_id", everyone, steps, ["yhat", "sd"])
    var = sd**2
    (host_supply,) = _dense(outlook.supply, "host_id", hosts, steps, ["supply"])
    placed = dict(data.shards.select("shard_id", "current_host_id").iter_rows())
    current = np.array([host_index.get(placed.get(s), -1) for s in everyone])
    on = current >= 0
    load, load_var = np.zeros((len(hosts), steps)), np.zeros((len(hosts), steps))
    np.add.at(load, current[on], mean[on])
    np.add.at(load_var, current[on], var[on])
    count = np.bincount(current[on], minlength=len(hosts)).astype(float)

    position = {s: i for i, s in enumerate(everyone)}
    wanted = np.array([position[s] for s in sorted(shard_ids)], dtype=np.int64)
    hours, share = [], []
    bursts = _host_bursts(data, everyone, current, wanted, len(hosts)) if burst_risk else None
    relief = _relief(
        relief_spread,
        host_supply,
        (load, load_var, count),
        mean[wanted],
        var[wanted],
        current[wanted],
        # At the full spread every host is judged alike: no need to read the history.
        overloaded_now(data, hosts) if relief_spread < 1 else np.ones(len(hosts), dtype=bool),
        bursts,
    )
    # bursts evaluate each probability twice: half the cells per chunk keeps the memory
    chunk = max(1, _CHUNK_CELLS // max(1, len(hosts) * steps * (2 if bursts else 1)))
    for start in range(0, len(wanted), chunk):
        idx = wanted[start : start + chunk]
        here = (current[idx][:, None] == np.arange(len(hosts))[None, :])[:, :, None]
        others = load[None] - here * mean[idx][:, None, :]
        others_var = load_var[None] - here * var[idx][:, None, :]
        with_burst = without_burst = None
        if bursts is not None:
            own = slice(start, start + len(idx))
            rate, mass = bursts.rate[own][:, None], bursts.mass[own][:, None]
            with_burst, without_burst = _with_and_without(
                bursts.host_rate[None] - here[:, :, 0] * rate,
                bursts.host_mass[None] - here[:, :, 0] * mass,
                rate,
                mass,
            )
        with_s = _p_over(
            host_supply[None],
            others + mean[idx][:, None, :],
            others_var + var[idx][:, None, :],
            with_burst,
        )
        without = _p_over(host_supply[None], others, others_var, without_burst)
        n_others = count[None, :] - here[:, :, 0]
        hours.append(np.where(here[:, :, 0], 0.0, _added(with_s, without, n_others)))
        share.append(with_s.mean(axis=2))
    names = [everyone[i] for i in wanted]
    return pl.DataFrame(
        {
            "shard_id": np.repeat(names, len(hosts)),
            "host_id": np.tile(hosts, len(names)),
            "overload_hours": np.concatenate(hours).ravel() if hours else np.zeros(0),
            "overload_p": np.concatenate(share).ravel() if share else np.zeros(0),
            "relief_hours": np.repeat(relief, len(hosts)),
        },
        schema={
            "shard_id": pl.String,
            "host_id": pl.String,
            "overload_hours": pl.Float64,
            "overload_p": pl.Float64,
            "relief_hours": pl.Float64,
        },
    )
