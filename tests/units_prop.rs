//! Property tests of the size parser: arbitrary input never panics, and every size written in
//! its canonical form (or in any unit it divides evenly) reads back to the same number of bytes.

use cumemlab::units::{parse_size, parse_size_list, size_to_input};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,40}") {
        let _ = parse_size(&s);
        let _ = parse_size_list(&s);
    }

    #[test]
    fn size_like_strings_never_panic(s in "[-+0-9._ ]{0,25}[a-zA-Z]{0,4}") {
        if let Ok(v) = parse_size(&s) {
            prop_assert!(v > 0);
        }
    }

    #[test]
    fn canonical_form_round_trips(v in 1u64..=u64::MAX) {
        prop_assert_eq!(parse_size(&size_to_input(v)), Ok(v));
    }

    #[test]
    fn every_unit_round_trips(n in 1u64..1_000_000, unit in prop::sample::select(vec![
        ("B", 1u64), ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000),
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
    ])) {
        prop_assert_eq!(parse_size(&format!("{n}{}", unit.0)), Ok(n * unit.1));
        prop_assert_eq!(parse_size(&format!("{n}{}", unit.0.to_lowercase())), Ok(n * unit.1));
    }

    #[test]
    fn bare_g_m_k_are_always_refused_as_ambiguous(n in 1u64..1_000_000, u in prop::sample::select(vec!["G", "M", "K", "T", "g", "m", "k"])) {
        let e = parse_size(&format!("{n}{u}")).unwrap_err().0;
        prop_assert!(e.contains("ambiguous"));
    }
}
