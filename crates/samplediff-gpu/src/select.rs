//! The order statistics settled from the order kernel's counts (`order.rs`), exactly.
//!
//! Errors are ranked by their f32 key (module docs of `shaders/order_stats.wgsl`): three
//! passes of counts narrow each wanted rank to one key, 10 + 11 + 10 bits of it (ULP
//! distances: 10 + 11 + 11). Within a key the exact errors differ only where the f32 difference
//! was inexact: those pairs, few, are gathered by index and the host computes their errors in
//! f64 from the tensors' own bytes, as it does for the special pairs (tiny inputs) that the
//! counts leave out. Every value reported is then the one the CPU kernel reports.

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

    fn error(&self, i: u64) -> f64 {
        let (x, y) = self.pair(i);
        (x - y).abs()
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
    let mut specials: Vec<(u32, f64, u64)> = l1
        .gathered
        .iter()
        .filter(|e| e.tag == TAG_SPECIAL)
        .map(|e| {
            let d = values.error(e.index);
            (key(d), d, e.index)
        })
        .collect();
    specials.sort_by_key(|s| s.0);
    if specials.len() as u64 != l1.specials() {
        return Err(GpuError::Gpu("gathered specials and their count differ".into()));
    }
    let zero = l1.zeros() + specials.iter().filter(|s| s.1 == 0.0).count() as u64;
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
    let s_count =
        |lo: u32, hi: u32| (specials.partition_point(|s| s.0 <= hi) - specials.partition_point(|s| s.0 < lo)) as u64;
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

    // Levels 2 and 3; the last one's counts give each error key's group among the counted
    // pairs (specials left out).
    let mut last = None;
    for level in [2u32, 3] {
        let (hi_e, lo_e) = if level == 2 { (ERRORS.l1, ERRORS.l1 - ERRORS.l2) } else { (ERRORS.l1 - ERRORS.l2, 0) };
        let (hi_u, lo_u) = if level == 2 { (ULPS.l1, ULPS.l1 - ULPS.l2) } else { (ULPS.l1 - ULPS.l2, 0) };
        let te = unique(er.iter().map(|r| r.prefix));
        let tu = unique(ur.iter().map(|r| r.prefix));
        let pass = Pass::Refine { errors: (hi_e, lo_e, te.clone()), ulps: (hi_u, lo_u, tu.clone()) };
        let c = run.run(&pass, &[], 0.0)?;
        let bins_e = 1u32 << (hi_e - lo_e);
        descend(
            &mut er,
            |p| {
                let t = te.iter().position(|&x| x == p).expect("a target");
                (0..bins_e)
                    .map(|bin| {
                        let lo = ((p << (hi_e - lo_e)) | bin) << lo_e;
                        c.refined(false, t)[bin as usize] as u64 + s_count(lo, lo + ((1u32 << lo_e) - 1))
                    })
                    .collect()
            },
            hi_e - lo_e,
        )?;
        let bins_u = 1u32 << (hi_u - lo_u);
        descend(
            &mut ur,
            |p| {
                let t = tu.iter().position(|&x| x == p).expect("a target");
                (0..bins_u).map(|bin| c.refined(true, t)[bin as usize] as u64).collect()
            },
            hi_u - lo_u,
        )?;
        last = Some((c, te));
    }
    let (c3, te3) = last.expect("two levels ran");
    let bits3 = ERRORS.l1 - ERRORS.l2;
    // Pairs with error key `key` that the kernel counted.
    let counted = |key: u32| -> u64 {
        let t = te3.iter().position(|&x| x == key >> bits3).expect("a level-3 target");
        c3.refined(false, t)[(key & ((1 << bits3) - 1)) as usize] as u64
    };

    // Gather what the host must see: each wanted key's pairs whose f32 difference is inexact,
    // and for the worst elements every pair above the k-th largest key and its ties (only
    // the inexact ones if the ties are many: the first exact ties by index are found below).
    let keys: Vec<u32> = unique(er.iter().map(|r| r.prefix));
    let mut groups: Vec<Group> = keys.iter().map(|&k| Group { lo: k, hi: k, inexact_only: true }).collect();
    let worst_key = worst_rank.map(|i| er[i].prefix);
    let mut scan_ties = false;
    if let Some(kw) = worst_key {
        if kw < u32::MAX {
            groups.push(Group { lo: kw + 1, hi: u32::MAX, inexact_only: false });
        }
        scan_ties = counted(kw) > (GATHER_CAP / 4) as u64;
        groups.push(Group { lo: kw, hi: kw, inexact_only: scan_ties });
    }
    let g = run.run(&Pass::Gather(groups.clone()), &[], 0.0)?;
    let of_group = |i: usize| g.gathered.iter().filter(move |e| e.tag == TAG_GROUP + i as u32);

    // The exact value at each wanted rank.
    let mut value_at = Vec::with_capacity(er.len());
    for r in &er {
        let gi = keys.iter().position(|&k| k == r.prefix).expect("a group");
        let inexact: Vec<f64> = of_group(gi).map(|e| values.error(e.index)).collect();
        let exact = counted(r.prefix)
            .checked_sub(inexact.len() as u64)
            .ok_or_else(|| GpuError::Gpu("a key's inexact pairs outnumber its count".into()))?;
        let at_key = f32::from_bits(r.prefix) as f64;
        let mut group: Vec<f64> = inexact;
        group.extend(specials.iter().filter(|s| s.0 == r.prefix).map(|s| s.1));
        group.sort_by(f64::total_cmp);
        // The exact pairs all have the key's own value: insert them as one run.
        let split = group.partition_point(|&v| v < at_key);
        let v = if r.rank < split as u64 {
            group[r.rank as usize]
        } else if r.rank < split as u64 + exact {
            at_key
        } else {
            *group
                .get((r.rank - exact) as usize)
                .ok_or_else(|| GpuError::Gpu("a rank lies beyond its key's pairs".into()))?
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
    let edge_ties: Vec<f64> = l1.gathered.iter().filter(|e| e.tag == TAG_EDGE).map(|e| values.error(e.index)).collect();
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
        c += specials.iter().filter(|s| s.1 < p).count() as u64;
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
    if let (Some(kw), true) = (worst_key, k > 0) {
        let from = groups.len() - if kw < u32::MAX { 2 } else { 1 };
        let mut idx: Vec<u64> = (from..groups.len()).flat_map(|i| of_group(i).map(|e: &Entry| e.index)).collect();
        idx.extend(specials.iter().map(|s| s.2));
        if scan_ties {
            idx.extend(first_exact_ties(&values, kw, k as usize));
        }
        idx.sort_unstable();
        idx.dedup();
        let mut cands: Vec<(f64, u64, f64, f64)> = idx
            .into_iter()
            .map(|i| {
                let (x, y) = values.pair(i);
                ((x - y).abs(), i, x, y)
            })
            .collect();
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
