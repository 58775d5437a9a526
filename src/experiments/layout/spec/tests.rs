//! Unit tests of the spec reader: both formats, counts, dtypes and every refusal sentence.

use super::*;
use crate::units::{GB, MIB};

fn toml(text: &str) -> Result<Layout, String> {
    parse_spec(text, SpecFormat::Toml, "t.toml")
}

fn json(text: &str) -> Result<Layout, String> {
    parse_spec(text, SpecFormat::Json, "t.json")
}

#[test]
fn reads_both_formats_alike() {
    let t = toml(
        "[[tensor]]\nname = \"emb\"\nsize = \"2GB\"\ndtype = \"bf16\"\n\n[[tensor]]\nname = \"layer\"\nsize = \"512MiB\"\ncount = 3\n",
    )
    .unwrap();
    let j = json(
        r#"{"tensors": [{"name": "emb", "size": "2GB", "dtype": "bf16"}, {"name": "layer", "size": "512MiB", "count": 3}]}"#,
    )
    .unwrap();
    assert_eq!(t.tensors, j.tensors);
    let names: Vec<&str> = t.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["emb", "layer.0", "layer.1", "layer.2"]);
    assert_eq!(t.tensors[0].bytes, 2 * GB);
    assert_eq!(t.tensors[0].elements, Some(GB));
    assert_eq!(t.tensors[1].bytes, 512 * MIB);
    assert_eq!(t.tensors[1].component, "layer");
    assert_eq!(t.tensors[1].elements, None);
    assert_eq!(t.total_bytes(), 2 * GB + 3 * 512 * MIB);
    let bare = json(r#"[{"name": "x", "size": "1MiB", "dtype": "nvfp4"}]"#).unwrap();
    // nvfp4: 4.5 bits per value.
    assert_eq!(bare.tensors[0].elements, Some(MIB * 8 * 2 / 9));
}

#[test]
fn each_problem_is_one_sentence_naming_file_tensor_and_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[[tensor]]\nname = \"a\"\n",
            &["t.toml", "tensor 1 `a`", "`size` is missing"],
        ),
        (
            "[[tensor]]\nsize = \"1GiB\"\n",
            &["tensor 1", "`name` is missing"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"-1GiB\"\n",
            &["`size`", "negative"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = -5\n",
            &["`size`", "negative"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = 1024\n",
            &["`size`", "no unit"],
        ),
        ("[[tensor]]\nname = \"a\"\nsize = 0\n", &["`size`", "zero"]),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"0B\"\n",
            &["`size`", "zero"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"4G\"\n",
            &["`size`", "ambiguous"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\ndtype = \"fp12\"\n",
            &["`dtype`", "fp12", "bf16", "nvfp4"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\ncount = 0\n",
            &["`count`", "positive whole number"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\ncount = 1.5\n",
            &["`count`"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\nszie = 3\n",
            &["unknown field `szie`", "name, size, count, dtype"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\n[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\n",
            &["tensor 2", "already used by tensor 1"],
        ),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\ncount = 2\n[[tensor]]\nname = \"a.1\"\nsize = \"1GiB\"\n",
            &["`a.1`", "already used"],
        ),
        (
            "[[tensors]]\nname = \"a\"\n",
            &["unknown top-level key `tensors`", "[[tensor]]"],
        ),
        ("", &["no [[tensor]] tables"]),
        (
            "[[tensor]]\nname = \"a\"\nsize = \"1GiB\n",
            &["not valid TOML", "line 3"],
        ),
        ("[[tensor]\nname = \"a\"\n", &["not valid TOML", "line 1"]),
    ];
    for (text, want) in cases {
        let e = toml(text).unwrap_err();
        for w in *want {
            assert!(e.contains(w), "{text:?}: {e:?} lacks {w:?}");
        }
        assert!(!e.contains('\n'), "one line: {e:?}");
        assert!(e.starts_with("layout spec `t.toml`"), "{e}");
    }
    let jcases: &[(&str, &[&str])] = &[
        (
            r#"{"tensors": [{"name": "a"}]}"#,
            &["t.json", "`size` is missing", "\"size\": \"512MiB\""],
        ),
        (
            r#"{"tensors": [{"name": "a", "size": "1GiB", "dtype": "q3"}]}"#,
            &["`dtype`", "q3"],
        ),
        (
            r#"{"tensors": [{"name": "a", "size": "1GiB"},]}"#,
            &["not valid JSON", "line 1"],
        ),
        (r#"{"tensor": []}"#, &["unknown top-level key `tensor`"]),
        (r#"{"tensors": []}"#, &["lists no tensors"]),
        (r#"[{"name": 3, "size": "1GiB"}]"#, &["`name` is a number"]),
        (r#"[{"name": "a", "size": true}]"#, &["`size` is a boolean"]),
        (
            r#"[{"name": "a", "size": "1GiB", "count": -2}]"#,
            &["`count` is -2"],
        ),
        (
            r#"[{"name": "a", "size": "1GiB", "count": "2"}]"#,
            &["`count` is a string"],
        ),
        (r#"[5]"#, &["tensor 1", "not an object"]),
    ];
    for (text, want) in jcases {
        let e = json(text).unwrap_err();
        for w in *want {
            assert!(e.contains(w), "{text:?}: {e:?} lacks {w:?}");
        }
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
}

#[test]
fn formats_by_extension_and_limits() {
    assert_eq!(
        SpecFormat::for_path(Path::new("a.TOML")),
        Ok(SpecFormat::Toml)
    );
    assert_eq!(
        SpecFormat::for_path(Path::new("a.json")),
        Ok(SpecFormat::Json)
    );
    assert!(
        SpecFormat::for_path(Path::new("a.yaml"))
            .unwrap_err()
            .contains(".toml nor .json")
    );
    let e = toml("[[tensor]]\nname = \"a\"\nsize = \"1GiB\"\ncount = 200000\n").unwrap_err();
    assert!(e.contains("at most 100000"), "{e}");
    let e = toml("[[tensor]]\nname = \"a\"\nsize = \"16EiB\"\n").unwrap_err();
    assert!(e.contains("unknown unit"), "{e}");
    let e = toml("[[tensor]]\nname = \"a\"\nsize = \"10000000TB\"\ncount = 3\n").unwrap_err();
    assert!(e.contains("16 EiB"), "{e}");
}
