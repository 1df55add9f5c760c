//! `-w auto`: how many workers fit the container.
//!
//! The number is the CPU limit of the process's own cgroup, rounded up and
//! at least 1: cgroup v2 `cpu.max` ("200000 100000" is 2 CPUs, "max …" no
//! limit), or cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 is
//! no limit). The process's cgroup comes from `/proc/self/cgroup`; every
//! cgroup from it up to the root of the mounted hierarchy is read and the
//! lowest limit counts, since a parent's limit (a Kubernetes pod's) bounds
//! its children. Without a limit, the number of CPUs the process may run
//! on (its affinity mask, as `taskset` or a cpuset sets it).
//!
//! In a container the hierarchy is usually mounted with the container's
//! own cgroup as its root (a cgroup namespace, or a v1 bind mount), while
//! `/proc/self/cgroup` may still name the host's path; so a path missing
//! under the mount is read from its nearest existing ancestor, which is
//! the mount itself.
//!
//! Every file is read under a root directory, `/` unless
//! `ASERVE_TEST_CGROUP_ROOT` names another: aserve's tests point it at a
//! fake tree (`DIR/proc/self/cgroup`, `DIR/sys/fs/cgroup/…`). The variable
//! is for those tests only. Unreadable or malformed files count as "no
//! limit here", never as an error: a worker count can always be chosen.

use std::path::{Path, PathBuf};

use aserve_config::Workers;

/// The test-only variable that moves the root the cgroup files are read
/// under.
const ROOT_VAR: &str = "ASERVE_TEST_CGROUP_ROOT";

/// The worker count `setting` asks for; `auto` is worked out here and
/// logged with where it came from.
pub(crate) fn workers(setting: Workers) -> usize {
    match setting {
        Workers::Count(n) => n.max(1),
        Workers::Auto => {
            let root = std::env::var_os(ROOT_VAR).map_or_else(|| PathBuf::from("/"), PathBuf::from);
            let detected = detect(&root, available_cpus);
            tracing::info!("workers: {} ({})", detected.count, detected.source);
            detected.count
        }
    }
}

/// A worker count and where it came from, for the log.
#[derive(Debug, PartialEq, Eq)]
struct Detected {
    count: usize,
    source: String,
}

/// A CPU limit: `quota` microseconds of CPU time per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quota {
    quota: u64,
    period: u64,
}

impl Quota {
    /// CPUs, rounded up, at least 1.
    fn cpus(self) -> usize {
        usize::try_from(self.quota.div_ceil(self.period).max(1)).unwrap_or(usize::MAX)
    }

    /// Whether `self` allows less CPU time than `other`.
    fn below(self, other: Quota) -> bool {
        u128::from(self.quota) * u128::from(other.period)
            < u128::from(other.quota) * u128::from(self.period)
    }
}

/// The limit found at one cgroup, and how to describe it.
struct Found {
    quota: Quota,
    source: String,
}

fn detect(root: &Path, available: impl FnOnce() -> usize) -> Detected {
    if let Some(found) = cgroup_limit(root) {
        return Detected {
            count: found.quota.cpus(),
            source: found.source,
        };
    }
    let cpus = available().max(1);
    Detected {
        count: cpus,
        source: format!("no cgroup CPU limit; {cpus} CPUs available to the process"),
    }
}

/// The lowest CPU limit on the way from the process's cgroup to the root.
fn cgroup_limit(root: &Path) -> Option<Found> {
    let text = std::fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
    let mounts = root.join("sys/fs/cgroup");
    let mut lowest: Option<Found> = None;
    for line in parse_proc_cgroup(&text) {
        let (base, read): (PathBuf, fn(&Path) -> Option<Found>) = if line.unified {
            (mounts.clone(), read_v2)
        } else if line.controllers.contains(&"cpu") {
            let joined = mounts.join(line.controllers.join(","));
            let base = if joined.is_dir() {
                joined
            } else {
                mounts.join("cpu")
            };
            (base, read_v1)
        } else {
            continue;
        };
        for dir in ancestors(&base, line.path) {
            if let Some(found) = read(&dir)
                && lowest
                    .as_ref()
                    .is_none_or(|low| found.quota.below(low.quota))
            {
                lowest = Some(found);
            }
        }
    }
    lowest
}

/// `base/path` and each of its ancestors down to `base`, those that exist.
fn ancestors(base: &Path, path: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    loop {
        let dir = parts.iter().fold(base.to_path_buf(), |d, p| d.join(p));
        if dir.is_dir() {
            dirs.push(dir);
        }
        if parts.pop().is_none() {
            return dirs;
        }
    }
}

fn read_v2(dir: &Path) -> Option<Found> {
    let file = dir.join("cpu.max");
    let text = std::fs::read_to_string(&file).ok()?;
    let quota = parse_cpu_max(&text)?;
    Some(Found {
        quota,
        source: format!(
            "cgroup v2 cpu.max {}/{} at {}",
            quota.quota,
            quota.period,
            dir.display()
        ),
    })
}

fn read_v1(dir: &Path) -> Option<Found> {
    let quota = std::fs::read_to_string(dir.join("cpu.cfs_quota_us")).ok()?;
    let period = std::fs::read_to_string(dir.join("cpu.cfs_period_us")).ok()?;
    let quota = parse_v1(&quota, &period)?;
    Some(Found {
        quota,
        source: format!(
            "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us {}/{} at {}",
            quota.quota,
            quota.period,
            dir.display()
        ),
    })
}

/// One line of `/proc/self/cgroup`: `ID:CONTROLLERS:PATH`.
#[derive(Debug, PartialEq, Eq)]
struct CgroupLine<'a> {
    /// The v2 (unified) hierarchy: `0::PATH`.
    unified: bool,
    controllers: Vec<&'a str>,
    path: &'a str,
}

fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            if id.parse::<u32>().is_err() || !path.starts_with('/') {
                return None;
            }
            Some(CgroupLine {
                unified: id == "0" && controllers.is_empty(),
                controllers: controllers.split(',').filter(|c| !c.is_empty()).collect(),
                path,
            })
        })
        .collect()
}

/// `cpu.max`: `QUOTA PERIOD`, or `max PERIOD` (no limit). Anything else is
/// read as no limit.
fn parse_cpu_max(text: &str) -> Option<Quota> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" || fields.next().is_some() {
        return None;
    }
    quota_of(quota.parse().ok()?, period)
}

/// v1: a quota of -1 is no limit.
fn parse_v1(quota: &str, period: &str) -> Option<Quota> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    quota_of(u64::try_from(quota).ok()?, period)
}

fn quota_of(quota: u64, period: u64) -> Option<Quota> {
    (quota > 0 && period > 0).then_some(Quota { quota, period })
}

/// CPUs in the process's affinity mask.
fn available_cpus() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity};
    use nix::unistd::Pid;
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count(),
        Err(_) => std::thread::available_parallelism().map_or(1, usize::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(quota: u64, period: u64) -> Option<Quota> {
        Some(Quota { quota, period })
    }

    #[test]
    fn cpu_max_is_quota_and_period_or_max() {
        assert_eq!(parse_cpu_max("200000 100000\n"), q(200_000, 100_000));
        assert_eq!(parse_cpu_max("150000 100000"), q(150_000, 100_000));
        assert_eq!(parse_cpu_max("50000"), q(50_000, 100_000));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        for garbage in [
            "", "x 100000", "100000 y", "0 100000", "1 0", "1 2 3", "-5 100",
        ] {
            assert_eq!(parse_cpu_max(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn v1_quota_of_minus_one_is_no_limit() {
        assert_eq!(parse_v1("150000\n", "100000\n"), q(150_000, 100_000));
        assert_eq!(parse_v1("-1\n", "100000\n"), None);
        assert_eq!(parse_v1("abc", "100000"), None);
        assert_eq!(parse_v1("100", "0"), None);
    }

    #[test]
    fn cpus_round_up_and_are_at_least_one() {
        assert_eq!(
            Quota {
                quota: 150_000,
                period: 100_000
            }
            .cpus(),
            2
        );
        assert_eq!(
            Quota {
                quota: 200_000,
                period: 100_000
            }
            .cpus(),
            2
        );
        assert_eq!(
            Quota {
                quota: 1_000,
                period: 100_000
            }
            .cpus(),
            1
        );
        let half = Quota {
            quota: 50_000,
            period: 100_000,
        };
        assert!(half.below(Quota {
            quota: 100_000,
            period: 100_000
        }));
        assert!(!half.below(Quota {
            quota: 5_000,
            period: 10_000
        }));
    }

    #[test]
    fn proc_cgroup_lines_for_v1_v2_and_garbage() {
        let text = "12:cpu,cpuacct:/kubepods/pod1/ctr\n\
                    11:memory:/kubepods/pod1/ctr\n\
                    1:name=systemd:/init.scope\n\
                    0::/kubepods.slice/pod1/ctr\n\
                    garbage\n\
                    x:cpu:/y\n\
                    3:cpu:relative\n";
        let lines = parse_proc_cgroup(text);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[0].controllers, ["cpu", "cpuacct"]);
        assert!(!lines[0].unified);
        assert_eq!(lines[3].path, "/kubepods.slice/pod1/ctr");
        assert!(lines[3].unified);
    }

    /// A fake root: `files` are (path under root, contents).
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("aserve-cpus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        root
    }

    #[test]
    fn v2_lowest_limit_on_the_path_counts() {
        let root = tree(
            "v2",
            &[
                ("proc/self/cgroup", "0::/kubepods/pod1/ctr\n"),
                ("sys/fs/cgroup/cpu.max", "max 100000\n"),
                ("sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n"),
                ("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n"),
            ],
        );
        let d = detect(&root, || 64);
        assert_eq!(d.count, 3, "{d:?}");
        assert!(
            d.source.starts_with("cgroup v2 cpu.max 300000/100000 at "),
            "{d:?}"
        );
        assert!(d.source.ends_with("kubepods/pod1"), "{d:?}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_host_path_missing_in_the_container_reads_the_mount() {
        // v1 without a cgroup namespace: the host's path, the container's
        // cgroup mounted as the hierarchy's root.
        let root = tree(
            "v1",
            &[
                (
                    "proc/self/cgroup",
                    "4:cpu,cpuacct:/docker/abc\n2:memory:/docker/abc\n",
                ),
                ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n"),
                ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
            ],
        );
        let d = detect(&root, || 64);
        assert_eq!(d.count, 2, "{d:?}");
        assert!(
            d.source
                .starts_with("cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us 150000/100000")
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn no_limit_or_no_cgroup_falls_back_to_the_cpus() {
        let root = tree(
            "none",
            &[
                ("proc/self/cgroup", "0::/\n"),
                ("sys/fs/cgroup/cpu.max", "max 100000\n"),
            ],
        );
        let d = detect(&root, || 6);
        assert_eq!(d.count, 6);
        assert_eq!(
            d.source,
            "no cgroup CPU limit; 6 CPUs available to the process"
        );
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(detect(&root, || 0).count, 1, "missing files, and never 0");
        assert!(available_cpus() >= 1);
    }
}
