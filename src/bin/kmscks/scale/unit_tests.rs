//! The scale report's arithmetic and table: windows, percentiles, picks, rows.

use super::*;

#[test]
fn the_table_describes_the_window_it_averages() {
    let r = ScaleReport {
        keys: 1,
        create_first_us: 1.0,
        create_last_us: 1.0,
        create_p999_us: 1.0,
        dir_bytes_per_key: 1.0,
        open_ms: 1.0,
        rss_bytes_per_key: 1.0,
        gdk_random_ratio: 1.0,
        seal_random_floor_ratio: 1.0,
        expand_random_floor_ratio: 1.0,
        list_keys_full_ms: 1.0,
    };
    let rows = r.rows();
    assert_eq!(rows.len(), ScaleReport::FIELDS.len());
    for (name, _, _, what) in &rows[1..3] {
        assert!(what.contains(&format!(" {WINDOW} ")), "{name}: {what}");
    }
}

#[test]
fn vm_rss_is_read_in_bytes() {
    let status = "Name:\tkmscks\nVmPeak:\t  999 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
    assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
    assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    assert!(vm_rss_bytes().unwrap() > 0);
}

#[test]
fn index_lists_are_powers_of_two_with_eight_picks_per_key() {
    assert_eq!(pick_count(3), MIN_PICKS);
    assert_eq!(pick_count(100_000), 1 << 20);
    for n in [1, 600, 10_000, 100_000] {
        let len = pick_count(n);
        assert!(len.is_power_of_two() && len >= 8 * n, "{n}: {len}");
    }
}

#[test]
fn random_indices_stay_below_n_and_reach_every_key() {
    let mut rng = SplitMix64(7);
    let mut seen = [false; 10];
    for _ in 0..10_000 {
        let i = rng.below(10);
        assert!(i < 10);
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s), "{seen:?}");
}

#[test]
fn progress_draws_in_place_only_when_given_somewhere_to_draw() {
    let mut buf = Vec::new();
    {
        let mut p = Progress::new(Some(&mut buf));
        p.creating(1, 2, Instant::now());
        p.phase("listing");
        p.clear();
    }
    let text = String::from_utf8(buf).unwrap();
    assert!(text.starts_with("\rCreateKey 1/2"), "{text:?}");
    assert!(text.contains("\rlisting…"), "{text:?}");
    assert!(!text.contains('\n'), "{text:?}");
    let mut silent = Progress::new(None);
    silent.creating(1, 2, Instant::now());
    silent.phase("listing");
    assert!(silent.drawn.is_none());
}

#[test]
fn a_scratch_directory_is_new_and_removed_on_drop() {
    let a = ScratchDir::new().unwrap();
    let b = ScratchDir::new().unwrap();
    assert_ne!(a.path(), b.path());
    assert!(a.path().is_dir());
    let path = a.path().to_owned();
    drop(a);
    assert!(!path.exists());
}

#[test]
fn the_directory_size_counts_nested_files() {
    let dir = ScratchDir::new().unwrap();
    std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
    assert_eq!(dir_size(dir.path()).unwrap(), 15);
}
