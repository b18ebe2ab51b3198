//! docs/certdef-format.md §3 and `keystamp_certdef::field` describe one layout: every line of the
//! document's table is checked against the constant the reader and writer use, and every
//! constant must appear in the table. Change one without the other and this fails.

use keystamp_certdef::field::{self, Field, cert_loc, def, device_loc, element, header};

fn one(at: usize) -> Field {
    at..at + 1
}

/// A section of the table: its heading, its size, (label each line starts with, field).
type Section = (&'static str, usize, Vec<(&'static str, Field)>);

fn expected() -> Vec<Section> {
    vec![
        (
            "header",
            header::LEN,
            vec![
                ("magic", header::MAGIC),
                ("format version", one(header::VERSION)),
                ("flags", one(header::FLAGS)),
                ("definition count", one(header::COUNT)),
                ("reserved", one(header::RESERVED_0)),
                ("total blob length", header::TOTAL_LEN),
                ("reserved", header::RESERVED_1),
            ],
        ),
        (
            "n × definition record",
            def::FIXED_LEN,
            vec![
                ("role", one(def::ROLE)),
                ("cert_type", one(def::CERT_TYPE)),
                ("template_id", one(def::TEMPLATE_ID)),
                ("chain_id", one(def::CHAIN_ID)),
                ("sn_source", one(def::SN_SOURCE)),
                ("issue_date_format", one(def::ISSUE_DATE_FORMAT)),
                ("expire_date_format", one(def::EXPIRE_DATE_FORMAT)),
                ("expire_years", one(def::EXPIRE_YEARS)),
                ("private_key_slot", def::PRIVATE_KEY_SLOT),
                ("comp_cert_dev_loc", def::COMP_CERT_DEV_LOC),
                ("cert_sn_dev_loc", def::CERT_SN_DEV_LOC),
                ("public_key_dev_loc", def::PUBLIC_KEY_DEV_LOC),
                ("tbs_cert_loc", def::TBS_CERT_LOC),
                ("std_cert_elements", def::STD_CERT_ELEMENTS),
                ("template length", def::TEMPLATE_LEN),
                ("name length", one(def::NAME_LEN)),
                ("CA-definition name length", one(def::CA_NAME_LEN)),
                ("custom element count", one(def::ELEMENT_COUNT)),
                ("reserved", one(def::RESERVED)),
                // The open-ended line: the variable part starts after the fixed part.
                ("name", def::FIXED_LEN..usize::MAX),
            ],
        ),
        (
            "DeviceLoc record",
            device_loc::LEN,
            vec![
                ("zone", one(device_loc::ZONE)),
                ("is_genkey", one(device_loc::IS_GENKEY)),
                ("slot", device_loc::SLOT),
                ("offset", device_loc::OFFSET),
                ("count", device_loc::COUNT),
            ],
        ),
        (
            "CertLoc record",
            cert_loc::LEN,
            vec![("offset", cert_loc::OFFSET), ("count", cert_loc::COUNT)],
        ),
        (
            "element record",
            element::LEN,
            vec![
                ("id length", one(element::ID_LEN)),
                ("id", element::ID),
                ("device_loc", element::DEVICE_LOC),
                ("cert_loc", element::CERT_LOC),
                ("transform 0", one(element::TRANSFORM_0)),
                ("transform 1", one(element::TRANSFORM_1)),
                ("reserved", one(element::RESERVED)),
            ],
        ),
    ]
}

/// The ``` block of §3.
fn layout_block() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/certdef-format.md");
    let doc = std::fs::read_to_string(path).expect("docs/certdef-format.md");
    let sec = &doc[doc.find("## 3. The definition blob").expect("§3")..];
    let body = &sec[sec.find("```\n").expect("code block") + 4..];
    body[..body.find("```").expect("end of block")].to_string()
}

/// `  8..12   label` → (8..12, "label"); `  4   label` → (4..5, …); `  76..   label` → (76..MAX, …).
fn parse_line(line: &str) -> Option<(Field, String)> {
    let t = line.trim_start();
    let (offsets, label) = t.split_once(char::is_whitespace)?;
    let num = |s: &str| s.parse::<usize>().ok();
    let range = match offsets.split_once("..") {
        Some((a, "")) => num(a)?..usize::MAX,
        Some((a, b)) => num(a)?..num(b)?,
        None => num(offsets).map(|a| a..a + 1)?,
    };
    Some((range, label.trim().to_string()))
}

/// Sections of the block: heading line → its indented field lines.
fn sections(block: &str) -> Vec<(String, Vec<(Field, String)>)> {
    let mut out: Vec<(String, Vec<(Field, String)>)> = Vec::new();
    for line in block.lines() {
        if line.starts_with("  ") {
            let parsed = parse_line(line).unwrap_or_else(|| panic!("unparsed line: {line:?}"));
            out.last_mut()
                .expect("field before a heading")
                .1
                .push(parsed);
        } else if !line.trim().is_empty() {
            out.push((line.to_string(), Vec::new()));
        }
    }
    out
}

#[test]
fn doc_table_matches_field_constants() {
    let found = sections(&layout_block());
    for (heading, size, fields) in expected() {
        let (title, lines) = found
            .iter()
            .find(|(h, _)| h.starts_with(heading))
            .unwrap_or_else(|| panic!("no section {heading:?} in docs/certdef-format.md §3"));
        let stated = match heading {
            "n × definition record" => format!("(fixed part {size} bytes)"),
            _ => format!("({size} bytes)"),
        };
        assert!(title.contains(&stated), "{title:?} should say {stated}");
        let doc: Vec<(Field, &str)> = lines.iter().map(|(r, l)| (r.clone(), l.as_str())).collect();
        assert_eq!(doc.len(), fields.len(), "{heading}: doc lines {doc:#?}");
        for ((range, label), (want_label, want)) in doc.iter().zip(&fields) {
            assert!(
                label.starts_with(want_label),
                "{heading}: {label:?} vs {want_label:?}"
            );
            assert_eq!(
                range, want,
                "{heading}: {want_label} is {range:?} in the doc"
            );
        }
    }
    let headings = found.iter().filter(|(_, l)| !l.is_empty()).count();
    assert_eq!(
        headings,
        expected().len(),
        "a section the test does not know"
    );
}

#[test]
fn doc_states_root_key_and_digest_sizes() {
    let block = layout_block();
    let stated = |prefix: &str| -> usize {
        let line = block
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?}"));
        let rest = &line[prefix.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(stated("[root public key: "), field::ROOT_KEY_LEN);
    assert_eq!(stated("digest: "), field::DIGEST_LEN);
}

#[test]
fn parser_reads_each_line_form() {
    assert_eq!(parse_line("  8..12   total"), Some((8..12, "total".into())));
    assert_eq!(
        parse_line("  4       format version = 1"),
        Some((4..5, "format version = 1".into()))
    );
    assert_eq!(
        parse_line("  76..    name"),
        Some((76..usize::MAX, "name".into()))
    );
    assert_eq!(parse_line("  x..2 bad"), None);
}
