//! The order statistics settled from the order kernel's counts (`order.rs`), exactly.
//!
//! Errors are ranked by their f32 key (module docs of `shaders/order_stats.wgsl`): passes of
//! counts narrow each wanted rank, 10 then 11 bits of its key. If the pairs in the bins found
//! are few, the gather pass returns them whole and the host ranks their exact errors (f64, from
//! each pair's bits); else a third pass narrows each rank to one key, within which the exact
//! errors differ only where the f32 difference was inexact, and only those pairs, few, are
//! gathered. ULP distances are integers, refined 11 bits a pass from their maximum's bit length.
//! The special pairs (tiny inputs) that the counts leave out are settled on the host too. Every
//! value reported is then the one the CPU kernel reports.

use std::collections::HashMap;

use samplediff_formats::RawTensor;
use samplediff_metrics::quantiles::{MAX_DECADES, decade, decade_histogram, percentiles, pow10, quantile_positions};
use samplediff_metrics::report::{Histogram, Percentiles, WorstElement};
use samplediff_metrics::{Floored, Moments, unravel};

use crate::error::{GpuError, Result};
use crate::order::{Counts, Entry, GATHER_CAP, Group, L1_BINS, OrderRun, Pass, TAG_EDGE, TAG_GROUP, TAG_SPECIAL};

/// What the order passes settle.
pub(crate) struct Settled {
    pub percentiles: Percentiles,
    pub histogram: Histogram,
    pub worst: Vec<WorstElement>,
    pub max_ad: f64,
    pub min_nonzero_ad: f64,
    /// ULP max and median.
    pub ulp: (u64, f64),
    pub floored: Floored,
}

/// Key layout of a stream: level 1 is key >> `l1`; level 2 the next `l2` bits; level 3 the rest.
#[derive(Clone, Copy)]
struct Levels {
    l1: u32,
    l2: u32,
}

const ERRORS: Levels = Levels { l1: 21, l2: 11 };
const ULPS: Levels = Levels { l1: 22, l2: 11 };

/// The two tensors' values, read on the host by index.
struct Values<'a> {
    a: &'a RawTensor,
    b: &'a RawTensor,
}

impl Values<'_> {
    fn pair(&self, i: u64) -> (f64, f64) {
        let (sa, sb) = (self.a.dtype.size(), self.b.dtype.size());
        let i = i as usize;
        (self.a.dtype.decode(&self.a.data[i * sa..]), self.b.dtype.decode(&self.b.data[i * sb..]))
    }
}

/// The f32 key of an exact error: what the GPU computes for every pair it counts.
fn key(d: f64) -> u32 {
    (d as f32).to_bits()
}

/// A rank being narrowed: the key bits found so far and the rank among the keys sharing them.
#[derive(Clone, Copy, Debug)]
struct Narrow {
    prefix: u32,
    rank: u64,
}

/// Find each rank's bin in `hist` (counts per bin of the keys under a prefix; asked once per
/// prefix).
fn descend(ranks: &mut [Narrow], hist: impl Fn(u32) -> Vec<u64>, bits: u32) -> Result<()> {
    let mut cache: HashMap<u32, Vec<u64>> = HashMap::new();
    for r in ranks.iter_mut() {
        let h = cache.entry(r.prefix).or_insert_with(|| hist(r.prefix));
        let mut below = 0;
        let bin = h.iter().position(|&c| {
            if r.rank < below + c {
                return true;
            }
            below += c;
            false
        });
        let Some(bin) = bin else {
            return Err(GpuError::Gpu(format!("rank {} lies beyond the counts ({below})", r.rank)));
        };
        *r = Narrow { prefix: (r.prefix << bits) | bin as u32, rank: r.rank - below };
    }
    Ok(())
}

fn unique(v: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut u: Vec<u32> = v.collect();
    u.sort_unstable();
    u.dedup();
    u
}

/// Settle every order statistic of `n` finite pairs (`m`: the main pass's moments, whose
/// extremes choose the decade edges; `floor`: the floored error's).
pub(crate) fn settle(
    run: &OrderRun,
    a: &RawTensor,
    b: &RawTensor,
    m: &Moments,
    floor: f64,
    top_k: usize,
) -> Result<Settled> {
    let values = Values { a, b };
    let n = m.c.finite;

    // Decade edges: every one the histogram could need, with a decade of margin on each side
    // (the main pass's extremes are within an f32 step of the exact ones found below).
    let ks: Vec<i32> = if m.min_nonzero_ad.is_finite() {
        let hi = decade(m.max_ad) + 1;
        let lo = (decade(m.min_nonzero_ad) - 1).max(decade(m.max_ad) - MAX_DECADES);
        (lo + 1..=hi).collect()
    } else {
        vec![]
    };
    let edges = edge_keys(&ks)?;

    let l1 = run.run(&Pass::Level1, &edges, floor as f32)?;
    let mut specials: Vec<Special> = l1
        .gathered
        .iter()
        .filter(|e| e.tag == TAG_SPECIAL)
        .map(|e| Special { key: key(e.error()), entry: *e })
        .collect();
    specials.sort_by_key(|s| s.key);
    if specials.len() as u64 != l1.specials() {
        return Err(GpuError::Gpu("gathered specials and their count differ".into()));
    }
    let zero = l1.zeros() + specials.iter().filter(|s| s.entry.error() == 0.0).count() as u64;
    let ulp_pairs = l1.ulps_l1().iter().map(|&c| c as u64).sum::<u64>();
    if ulp_pairs != n {
        return Err(GpuError::Gpu(format!("the ULP counts hold {ulp_pairs} pairs, not {n}")));
    }

    // The ranks wanted: the percentiles' neighbours, the largest error, the smallest non-zero
    // one, and the k-th largest (where the worst elements start).
    let positions = quantile_positions(n);
    let mut ranks: Vec<u64> = positions.iter().flat_map(|&(lo, hi, _)| [lo, hi]).collect();
    ranks.push(n - 1);
    let min_rank = (zero < n).then(|| {
        ranks.push(zero);
        ranks.len() - 1
    });
    let k = (top_k as u64).min(n);
    let worst_rank = (k > 0).then(|| {
        ranks.push(n - k);
        ranks.len() - 1
    });
    let ulp_ranks: Vec<u64> = if n % 2 == 1 { vec![n / 2] } else { vec![n / 2 - 1, n / 2] };

    // Level 1 from the kernel's counts plus the specials' keys.
    // (Specials sorted by key: a count of a key range is two searches.)
    let s_count = |lo: u32, hi: u32| {
        (specials.partition_point(|s| s.key <= hi) - specials.partition_point(|s| s.key < lo)) as u64
    };
    let mut er: Vec<Narrow> = ranks.iter().map(|&rank| Narrow { prefix: 0, rank }).collect();
    descend(
        &mut er,
        |_| {
            (0..L1_BINS as u32)
                .map(|bin| {
                    l1.errors_l1()[bin as usize] as u64 + s_count(bin << ERRORS.l1, ((bin + 1) << ERRORS.l1) - 1)
                })
                .collect()
        },
        0,
    )?;
    let mut ur: Vec<Narrow> = ulp_ranks.iter().map(|&rank| Narrow { prefix: 0, rank }).collect();
    descend(&mut ur, |_| l1.ulps_l1().iter().map(|&c| c as u64).collect(), 0)?;
    // Bits of the ULP distances below the prefixes found. Distances all below 2^22 share
    // prefix 0, and below the maximum's bit length every bit is zero: fewer bits to refine
    // (distances below 2^11, the usual case, take one refine pass).
    let mut ulp_shift = ULPS.l1;
    if ur.iter().all(|r| r.prefix == 0) {
        ulp_shift = ulp_shift.min(32 - l1.ulp_max().leading_zeros());
    }

    // Refine passes, at most 11 bits of each stream a pass, until every rank has its key. The
    // errors stop after level 2 if the pairs in the bins holding their ranks are few enough
    // to gather whole (`Whole`), else they go on to one key each (`Keys`).
    let mut err_shift = ERRORS.l1;
    let mut settled_by: Option<ErrorKeys> = None;
    while settled_by.is_none() || ulp_shift > 0 {
        let lo_e = err_shift.saturating_sub(ERRORS.l2);
        let lo_u = ulp_shift.saturating_sub(ULPS.l2);
        let te = if settled_by.is_none() { unique(er.iter().map(|r| r.prefix)) } else { vec![] };
        let tu = if ulp_shift > 0 { unique(ur.iter().map(|r| r.prefix)) } else { vec![] };
        let pass = Pass::Refine { errors: (err_shift, lo_e, te.clone()), ulps: (ulp_shift, lo_u, tu.clone()) };
        let c = run.run(&pass, &[], 0.0)?;
        if !tu.is_empty() {
            descend(
                &mut ur,
                |p| {
                    let t = tu.iter().position(|&x| x == p).expect("a target");
                    (0..1u32 << (ulp_shift - lo_u)).map(|bin| c.refined(true, t)[bin as usize] as u64).collect()
                },
                ulp_shift - lo_u,
            )?;
            ulp_shift = lo_u;
        }
        if te.is_empty() {
            continue;
        }
        // Pairs under each key prefix of this pass's bins, specials included.
        let bits = err_shift - lo_e;
        let in_bin = |p: u32| -> u64 {
            let t = te.iter().position(|&x| x == p >> bits).expect("a target");
            let lo = p << lo_e;
            c.refined(false, t)[(p & ((1 << bits) - 1)) as usize] as u64 + s_count(lo, lo | ((1u64 << lo_e) - 1) as u32)
        };
        descend(&mut er, |p| (0..1u32 << bits).map(|bin| in_bin((p << bits) | bin)).collect(), bits)?;
        err_shift = lo_e;
        if err_shift == 0 {
            let counted = te.iter().enumerate().map(|(t, &p)| (p, c.refined(false, t).to_vec())).collect();
            settled_by = Some(ErrorKeys::Keys(counted));
        } else {
            // Whole bins: each wanted one, and for the worst elements every pair from the k-th
            // largest error's bin up (k plus the pairs below it in its bin).
            let bins = unique(er.iter().map(|r| r.prefix));
            let mut pairs: u64 = bins.iter().map(|&p| in_bin(p)).sum();
            pairs += worst_rank.map_or(0, |i| k + er[i].rank);
            if pairs <= WHOLE_BINS_MAX {
                let sizes = bins.iter().map(|&p| (p, in_bin(p))).collect();
                settled_by = Some(ErrorKeys::Whole { shift: err_shift, sizes });
            }
        }
    }
    let settled_by = settled_by.expect("the loop ends with the errors settled");

    // Gather what the host must see, and the exact value at each wanted rank.
    let worst_prefix = worst_rank.map(|i| er[i].prefix);
    let prefixes: Vec<u32> = unique(er.iter().map(|r| r.prefix));
    let mut scan_ties = false;
    let groups: Vec<Group> = match &settled_by {
        ErrorKeys::Whole { shift, .. } => {
            let span = |p: u32| (p << shift, (p << shift) | ((1u64 << shift) - 1) as u32);
            let mut g: Vec<Group> =
                prefixes.iter().map(|&p| Group { lo: span(p).0, hi: span(p).1, inexact_only: false }).collect();
            if let Some(pw) = worst_prefix {
                g.push(Group { lo: span(pw).0, hi: u32::MAX, inexact_only: false });
            }
            g
        }
        ErrorKeys::Keys(_) => {
            // Each wanted key's pairs whose f32 difference is inexact (the exact ones all have
            // the key's value), and for the worst elements every pair above the k-th largest
            // key and its ties (only the inexact ones if the ties are many: the first exact
            // ties by index are found below).
            let mut g: Vec<Group> = prefixes.iter().map(|&p| Group { lo: p, hi: p, inexact_only: true }).collect();
            if let Some(kw) = worst_prefix {
                if kw < u32::MAX {
                    g.push(Group { lo: kw + 1, hi: u32::MAX, inexact_only: false });
                }
                scan_ties = settled_by.counted(kw) > (GATHER_CAP / 4) as u64;
                g.push(Group { lo: kw, hi: kw, inexact_only: scan_ties });
            }
            g
        }
    };
    let gathered = run.run(&Pass::Gather(groups.clone()), &[], 0.0)?.gathered;
    let of_group = |i: usize| gathered.iter().filter(move |e| e.tag == TAG_GROUP + i as u32);

    let mut value_at = Vec::with_capacity(er.len());
    for r in &er {
        let gi = prefixes.iter().position(|&p| p == r.prefix).expect("a group");
        let (lo, hi) = (groups[gi].lo, groups[gi].hi);
        let mut group: Vec<f64> = of_group(gi).map(Entry::error).collect();
        group.extend(specials.iter().filter(|s| (lo..=hi).contains(&s.key)).map(|s| s.entry.error()));
        group.sort_by(f64::total_cmp);
        let v = match &settled_by {
            ErrorKeys::Whole { sizes, .. } => {
                if group.len() as u64 != sizes.iter().find(|s| s.0 == r.prefix).expect("a bin").1 {
                    return Err(GpuError::Gpu("a bin's gathered pairs and its count differ".into()));
                }
                group[r.rank as usize]
            }
            ErrorKeys::Keys(_) => {
                let inexact = group.len() as u64 - specials.iter().filter(|s| s.key == r.prefix).count() as u64;
                let exact = settled_by
                    .counted(r.prefix)
                    .checked_sub(inexact)
                    .ok_or_else(|| GpuError::Gpu("a key's inexact pairs outnumber its count".into()))?;
                // The exact pairs all have the key's own value: inserted as one run.
                let at_key = f32::from_bits(r.prefix) as f64;
                let split = group.partition_point(|&v| v < at_key) as u64;
                if r.rank < split {
                    group[r.rank as usize]
                } else if r.rank < split + exact {
                    at_key
                } else {
                    *group
                        .get((r.rank - exact) as usize)
                        .ok_or_else(|| GpuError::Gpu("a rank lies beyond its key's pairs".into()))?
                }
            }
        };
        value_at.push(v);
    }
    let percentiles = percentiles(&positions, &value_at[..2 * positions.len()]);
    let max_ad = value_at[2 * positions.len()];
    let min_nonzero_ad = min_rank.map_or(f64::INFINITY, |i| value_at[i]);

    // The decade histogram: errors below each edge 10^k, exactly. The edges it needs follow
    // from the exact extremes; if the main pass's were too far off to have chosen them (it
    // flushed tiny inputs), level 1 counts again at the right edges.
    let needed: Vec<i32> = if zero < n {
        let hi = decade(max_ad);
        (decade(min_nonzero_ad).max(hi - MAX_DECADES + 1) + 1..=hi).collect()
    } else {
        vec![]
    };
    let again;
    let (ks, edges, l1) = if needed.iter().all(|k| ks.contains(k)) {
        (ks, edges, &l1)
    } else {
        let edges = edge_keys(&needed)?;
        again = run.run(&Pass::Level1, &edges, floor as f32)?;
        (needed, edges, &again)
    };
    let edge_ties: Vec<f64> = l1.gathered.iter().filter(|e| e.tag == TAG_EDGE).map(Entry::error).collect();
    let (between, ties) = (l1.between(edges.len()), l1.ties(edges.len()));
    let below = |k: i32| -> Result<u64> {
        let j = ks.iter().position(|&x| x == k).ok_or_else(|| GpuError::Gpu(format!("no edge for 10^{k}")))?;
        let p = pow10(k);
        let mut c: u64 = between[..=j].iter().map(|&x| x as u64).sum::<u64>();
        c += ties[..j].iter().map(|&x| x as u64).sum::<u64>();
        if (f32::from_bits(edges[j]) as f64) < p {
            c += ties[j] as u64;
        }
        c += edge_ties.iter().filter(|&&d| d < p).count() as u64;
        c += specials.iter().filter(|s| s.entry.error() < p).count() as u64;
        Ok(c)
    };
    // (The histogram's own error type carries no kind: the GPU error is kept aside.)
    let mut failed = None;
    let histogram = decade_histogram(n, zero, min_nonzero_ad, max_ad, |inner| {
        inner
            .iter()
            .map(|&k| {
                below(k).map_err(|e| {
                    let msg = samplediff_metrics::MetricsError::new(e.to_string());
                    failed = Some(e);
                    msg
                })
            })
            .collect()
    });
    let histogram = match (histogram, failed) {
        (_, Some(e)) => return Err(e),
        (h, None) => h.map_err(|e| GpuError::Gpu(e.0))?,
    };

    // The worst elements: the candidates sorted as the CPU kernel ranks them.
    let mut worst = Vec::new();
    if let (Some(kw), true) = (worst_prefix, k > 0) {
        let from = match &settled_by {
            ErrorKeys::Whole { .. } => groups.len() - 1,
            ErrorKeys::Keys(_) => groups.len() - if kw < u32::MAX { 2 } else { 1 },
        };
        let mut cands: Vec<(u64, f64, f64)> =
            (from..groups.len()).flat_map(|i| of_group(i).map(|e| (e.index, e.a, e.b))).collect();
        cands.extend(specials.iter().map(|s| (s.entry.index, s.entry.a, s.entry.b)));
        if scan_ties {
            cands.extend(first_exact_ties(&values, kw, k as usize).into_iter().map(|i| {
                let (x, y) = values.pair(i);
                (i, x, y)
            }));
        }
        cands.sort_unstable_by_key(|c| c.0);
        cands.dedup_by_key(|c| c.0);
        let mut cands: Vec<(f64, u64, f64, f64)> =
            cands.into_iter().map(|(i, x, y)| ((x - y).abs(), i, x, y)).collect();
        cands.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
        worst = cands
            .into_iter()
            .take(k as usize)
            .map(|(d, i, x, y)| WorstElement { index: unravel(i as usize, &a.shape), a: x, b: y, abs: d })
            .collect();
    }

    let ulp_median = match ur.as_slice() {
        [m] => m.prefix as f64,
        [lo, hi] => (lo.prefix as f64 + hi.prefix as f64) / 2.0,
        _ => unreachable!("one or two ULP ranks"),
    };
    Ok(Settled {
        percentiles,
        histogram,
        worst,
        max_ad,
        min_nonzero_ad,
        ulp: (l1.ulp_max() as u64, ulp_median),
        floored: floored(l1, floor),
    })
}

/// Pairs of whole level-2 bins the host takes at most instead of a third refine pass (16 bytes
/// each read back; a pass over 2 x 4 GiB costs more than reading back a few MiB).
const WHOLE_BINS_MAX: u64 = 1 << 18;

/// A pair with a tiny input, settled on the host: its error's f32 key and its entry.
struct Special {
    key: u32,
    entry: Entry,
}

/// How the wanted errors were found: as bins of keys whose pairs are gathered whole (`shift`
/// bits below each prefix; the pairs per bin, specials included), or as single keys with the
/// counted pairs of each key (the last refine pass's counts per target prefix).
enum ErrorKeys {
    Whole { shift: u32, sizes: Vec<(u32, u64)> },
    Keys(Vec<(u32, Vec<u32>)>),
}

impl ErrorKeys {
    /// Pairs the kernel counted with error key `key` (`Keys` only).
    fn counted(&self, key: u32) -> u64 {
        let Self::Keys(counts) = self else { return 0 };
        let bits = ERRORS.l1 - ERRORS.l2;
        let (_, c) = counts.iter().find(|(p, _)| *p == key >> bits).expect("a level-3 target");
        c[(key & ((1 << bits) - 1)) as usize] as u64
    }
}

/// The f32 keys of the decade edges 10^k: ascending, non-zero and finite, or the errors lie
/// beyond f32's decades.
fn edge_keys(ks: &[i32]) -> Result<Vec<u32>> {
    let edges: Vec<u32> = ks.iter().map(|&k| key(pow10(k))).collect();
    if edges.iter().any(|&e| e == 0 || e >= 0x7f80_0000) || edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(GpuError::Unsupported("errors beyond f32's decades".into()));
    }
    Ok(edges)
}

/// The first `k` pairs (by index) whose f32 error key is `kw` and whose f32 difference is
/// exact, found by reading the tensors from the start: used when the ties are too many to
/// gather, which also makes them dense, so the scan is short.
fn first_exact_ties(values: &Values, kw: u32, k: usize) -> Vec<u64> {
    let n = values.a.numel() as u64;
    let tiny = |v: f32| v != 0.0 && v.abs() < f32::from_bits(0x0d80_0000);
    (0..n)
        .filter(|&i| {
            let (x, y) = values.pair(i);
            let (fx, fy) = (x as f32, y as f32);
            x.is_finite()
                && y.is_finite()
                && !tiny(fx)
                && !tiny(fy)
                && (fx - fy).abs().to_bits() == kw
                && ((fx - fy) as f64) == x - y
        })
        .take(k)
        .collect()
}

/// The floored relative error from level 1's per-tile partials: sums in f64 in tile order,
/// the maximum recomputed in f64 from the pair that gave it.
fn floored(l1: &Counts, floor: f64) -> Floored {
    let mut f = Floored::default();
    let mut best: Option<(f32, f32, f32)> = None;
    for p in &l1.floored {
        f.n += p[0] as u64;
        f.sum += f32::from_bits(p[1]) as f64;
        let max = f32::from_bits(p[2]);
        if p[0] > 0 && best.is_none_or(|b| max > b.0) {
            best = Some((max, f32::from_bits(p[3]), f32::from_bits(p[4])));
        }
    }
    if let Some((_, x, y)) = best {
        let (x, y) = (x as f64, y as f64);
        f.max = (x - y).abs() / y.abs().max(floor);
    }
    f
}
