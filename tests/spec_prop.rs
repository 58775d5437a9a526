//! Property tests of the layout spec parser: arbitrary text never panics (TOML or JSON), and a
//! valid spec written from random entries reads back to the same tensors and sizes.

use cumemlab::experiments::layout::{SpecFormat, parse_spec};
use cumemlab::units::size_to_input;
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_toml_never_panics(s in "(?s).{0,200}") {
        let _ = parse_spec(&s, SpecFormat::Toml, "fuzz.toml");
    }

    #[test]
    fn arbitrary_json_never_panics(s in "(?s).{0,200}") {
        let _ = parse_spec(&s, SpecFormat::Json, "fuzz.json");
    }

    #[test]
    fn tensor_shaped_toml_never_panics(
        name in "[a-z\\\\\"]{0,8}",
        size in "[-0-9.]{0,6}[a-zA-Z]{0,3}",
        count in "[-0-9a-z]{0,4}",
    ) {
        let text = format!("[[tensor]]\nname = \"{name}\"\nsize = \"{size}\"\ncount = {count}\n");
        let _ = parse_spec(&text, SpecFormat::Toml, "fuzz.toml");
    }

    #[test]
    fn valid_specs_round_trip(entries in prop::collection::vec((1u64..(1 << 40), 1u64..5), 1..8)) {
        let mut toml = String::new();
        let mut json = Vec::new();
        for (i, (bytes, count)) in entries.iter().enumerate() {
            toml.push_str(&format!("[[tensor]]\nname = \"t{i}\"\nsize = \"{}\"\ncount = {count}\n\n", size_to_input(*bytes)));
            json.push(serde_json::json!({"name": format!("t{i}"), "size": size_to_input(*bytes), "count": count}));
        }
        let json = serde_json::json!({ "tensors": json }).to_string();
        for (text, fmt) in [(toml.as_str(), SpecFormat::Toml), (json.as_str(), SpecFormat::Json)] {
            let layout = parse_spec(text, fmt, "spec").unwrap();
            let want: Vec<u64> = entries.iter().flat_map(|(b, c)| std::iter::repeat_n(*b, *c as usize)).collect();
            let got: Vec<u64> = layout.tensors.iter().map(|t| t.bytes).collect();
            prop_assert_eq!(got, want);
        }
    }
}
