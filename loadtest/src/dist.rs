//! The random distributions a workload draws from: paste sizes and which existing
//! paste a read goes to (uniform, or Zipf-skewed towards the newest pastes).

use std::fmt;
use std::str::FromStr;

/// Sizes never go below this: the text carries a 17-byte unique prefix.
pub const MIN_SIZE: usize = 24;
/// Sizes never go above this, well under the service's 512 KiB body limit.
pub const MAX_SIZE: usize = 500_000;

/// Paste text sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SizeDist {
    /// Always `n` bytes: `fixed:N`.
    Fixed(usize),
    /// Uniform in `[lo, hi]`: `uniform:LO..HI`.
    Uniform(usize, usize),
    /// Exponential with this mean (many small, a few large): `exp:MEAN`.
    Exponential(f64),
}

impl SizeDist {
    /// One size, clamped to `[MIN_SIZE, MAX_SIZE]`.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let raw = match *self {
            SizeDist::Fixed(n) => n,
            SizeDist::Uniform(lo, hi) => rng.usize(lo..=hi),
            SizeDist::Exponential(mean) => {
                // Inverse CDF; 1 - f64() is in (0, 1], so ln is finite.
                let u = 1.0 - rng.f64();
                (-mean * u.ln()).round() as usize
            }
        };
        raw.clamp(MIN_SIZE, MAX_SIZE)
    }

    /// The largest size this distribution can produce.
    pub fn max(&self) -> usize {
        match *self {
            SizeDist::Fixed(n) => n.clamp(MIN_SIZE, MAX_SIZE),
            SizeDist::Uniform(_, hi) => hi.clamp(MIN_SIZE, MAX_SIZE),
            SizeDist::Exponential(_) => MAX_SIZE,
        }
    }
}

impl FromStr for SizeDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected fixed:N, uniform:LO..HI or exp:MEAN (bytes)");
        let (kind, arg) = s.split_once(':').ok_or_else(bad)?;
        let dist = match kind {
            "fixed" => SizeDist::Fixed(arg.parse().map_err(|_| bad())?),
            "uniform" => {
                let (lo, hi) = arg.split_once("..").ok_or_else(bad)?;
                let lo: usize = lo.parse().map_err(|_| bad())?;
                let hi: usize = hi.parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(format!("{s:?}: LO is above HI"));
                }
                SizeDist::Uniform(lo, hi)
            }
            "exp" => {
                let mean: f64 = arg.parse().map_err(|_| bad())?;
                if !(mean.is_finite() && mean >= 1.0) {
                    return Err(bad());
                }
                SizeDist::Exponential(mean)
            }
            _ => return Err(bad()),
        };
        if dist.max() < MIN_SIZE
            || matches!(dist, SizeDist::Fixed(n) | SizeDist::Uniform(_, n) if n > MAX_SIZE)
        {
            return Err(format!(
                "{s:?}: sizes must be within {MIN_SIZE}..{MAX_SIZE}"
            ));
        }
        Ok(dist)
    }
}

impl fmt::Display for SizeDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeDist::Fixed(n) => write!(f, "fixed:{n}"),
            SizeDist::Uniform(lo, hi) => write!(f, "uniform:{lo}..{hi}"),
            SizeDist::Exponential(mean) => write!(f, "exp:{mean}"),
        }
    }
}

/// Which of the `n` known pastes a read asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyDist {
    /// Every paste equally likely: `uniform`.
    Uniform,
    /// Zipf-like with exponent `s` (`zipf` or `zipf:S`, default 1.0): the paste of rank
    /// r (1 = newest) is chosen with probability about proportional to r^-s.
    Zipf(f64),
    /// Zipf-like over a popularity order that does not change during the run
    /// (`popular` or `popular:S`, default 1.0): rank r is the r-th paste created, so
    /// the pastes of the warm-up stay the most read, as a site's popular pastes do,
    /// and a new paste is rarely read. Unlike `zipf`, the hot set stays hot.
    Popular(f64),
}

impl KeyDist {
    /// An index into a list of `n > 0` keys, oldest first.
    pub fn sample(&self, rng: &mut fastrand::Rng, n: usize) -> usize {
        match *self {
            KeyDist::Uniform => rng.usize(0..n),
            KeyDist::Zipf(s) => n - zipf_rank(rng.f64(), n, s),
            KeyDist::Popular(s) => zipf_rank(rng.f64(), n, s) - 1,
        }
    }
}

/// Rank in `1..=n` from `u` in `[0, 1)`: the inverse CDF of the continuous power law
/// with density proportional to x^-s on `[1, n + 1)`, floored. O(1) for any `n`, which
/// matters because `n` grows during the run (no table to rebuild).
pub fn zipf_rank(u: f64, n: usize, s: f64) -> usize {
    let top = (n + 1) as f64;
    let x = if (s - 1.0).abs() < 1e-9 {
        top.powf(u)
    } else {
        let a = 1.0 - s;
        ((top.powf(a) - 1.0) * u + 1.0).powf(1.0 / a)
    };
    (x.floor() as usize).clamp(1, n)
}

impl FromStr for KeyDist {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(KeyDist::Uniform),
            None if s == "zipf" => Ok(KeyDist::Zipf(1.0)),
            None if s == "popular" => Ok(KeyDist::Popular(1.0)),
            Some((kind @ ("zipf" | "popular"), arg)) => match arg.parse::<f64>() {
                Ok(e) if e.is_finite() && e > 0.0 && kind == "zipf" => Ok(KeyDist::Zipf(e)),
                Ok(e) if e.is_finite() && e > 0.0 => Ok(KeyDist::Popular(e)),
                _ => Err(format!("{s:?}: the Zipf exponent must be a number above 0")),
            },
            _ => Err(format!(
                "{s:?}: expected uniform, zipf, zipf:EXPONENT, popular or popular:EXPONENT"
            )),
        }
    }
}

impl fmt::Display for KeyDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyDist::Uniform => write!(f, "uniform"),
            KeyDist::Zipf(s) => write!(f, "zipf:{s}"),
            KeyDist::Popular(s) => write!(f, "popular:{s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_stay_in_range() {
        let mut rng = fastrand::Rng::with_seed(7);
        let d: SizeDist = "uniform:512..1536".parse().unwrap();
        let mut sum = 0;
        for _ in 0..10_000 {
            let n = d.sample(&mut rng);
            assert!((512..=1536).contains(&n));
            sum += n;
        }
        let mean = sum as f64 / 10_000.0;
        assert!((mean - 1024.0).abs() < 20.0, "{mean}");
        let e: SizeDist = "exp:1000".parse().unwrap();
        let mean = (0..20_000).map(|_| e.sample(&mut rng)).sum::<usize>() as f64 / 20_000.0;
        assert!((mean - 1000.0).abs() < 60.0, "{mean}");
        assert_eq!(
            "fixed:10".parse::<SizeDist>().unwrap().sample(&mut rng),
            MIN_SIZE
        );
        assert!("uniform:9..3".parse::<SizeDist>().is_err());
        assert!("fixed:9999999".parse::<SizeDist>().is_err());
        assert!("big".parse::<SizeDist>().is_err());
        assert_eq!(d.to_string(), "uniform:512..1536");
    }

    #[test]
    fn popular_prefers_the_oldest_and_stays_in_bounds() {
        let d: KeyDist = "popular".parse().unwrap();
        assert_eq!(d, KeyDist::Popular(1.0));
        assert_eq!(
            "popular:0.8".parse::<KeyDist>().unwrap(),
            KeyDist::Popular(0.8)
        );
        assert!("popular:0".parse::<KeyDist>().is_err());
        assert_eq!(d.to_string(), "popular:1");
        let mut rng = fastrand::Rng::with_seed(3);
        let n = 1000;
        let mut first_ten = 0;
        for _ in 0..10_000 {
            let i = d.sample(&mut rng, n);
            assert!(i < n);
            first_ten += usize::from(i < 10);
        }
        // ln(11) / ln(1001): about 35% of reads go to the ten oldest pastes.
        assert!((2_500..4_500).contains(&first_ten), "{first_ten}");
    }

    #[test]
    fn zipf_prefers_the_newest_and_stays_in_bounds() {
        let mut rng = fastrand::Rng::with_seed(1);
        let z: KeyDist = "zipf".parse().unwrap();
        let n = 1000;
        let mut newest = 0;
        for _ in 0..10_000 {
            let i = z.sample(&mut rng, n);
            assert!(i < n);
            newest += usize::from(i == n - 1);
        }
        // P(rank 1) = ln 2 / ln 1001, about 10%; uniform would give 0.1%.
        assert!((800..1200).contains(&newest), "{newest}");
        for s in [0.5, 1.0, 1.5, 3.0] {
            assert_eq!(zipf_rank(0.0, 10, s), 1);
            assert_eq!(zipf_rank(0.999_999_9, 10, s), 10);
            assert_eq!(zipf_rank(0.5, 1, s), 1);
        }
        assert_eq!("uniform".parse::<KeyDist>().unwrap(), KeyDist::Uniform);
        assert_eq!("zipf:1.2".parse::<KeyDist>().unwrap(), KeyDist::Zipf(1.2));
        assert!("zipf:-1".parse::<KeyDist>().is_err());
    }
}
