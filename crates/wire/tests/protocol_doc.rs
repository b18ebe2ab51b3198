//! docs/protocol.md stays true: its transcript is what the code produces, every frame in it
//! decodes, and its byte counts are the measured ones.

mod support;

use keystamp_wire::*;
use support::fake::render_transcript;

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md")
}

fn transcript_block(doc: &str) -> String {
    let start = doc.find("<!-- transcript:begin -->\n```text\n").unwrap();
    let rest = &doc[start..];
    let body = &rest[rest.find("```text\n").unwrap() + 8..];
    body[..body.find("```\n<!-- transcript:end -->").unwrap()].to_string()
}

#[test]
fn transcript_in_doc_is_generated_by_the_code() {
    let (text, ..) = render_transcript(256, 0x3A00);
    assert_eq!(
        transcript_block(&doc()),
        text,
        "regenerate: cargo run --example transcript"
    );
}

#[test]
fn every_doc_frame_decodes_and_answers_pair_up() {
    let block = transcript_block(&doc());
    let mut dec = LineDecoder::new();
    let mut open: Option<(u16, Request)> = None;
    let mut pairs = 0;
    for line in block.lines() {
        let (dir, frame) = match line.split_at(2) {
            ("> ", f) => (Dir::Request, f),
            ("< ", f) => (Dir::Response, f),
            _ => {
                assert!(line.starts_with('#'), "{line}");
                continue;
            }
        };
        let input = format!("{frame}\n");
        let (used, ev) = dec.feed(input.as_bytes());
        assert_eq!(used, input.len());
        let Some(Event::Frame(f)) = ev else {
            panic!("not a frame: {line}")
        };
        assert_eq!(f.header.dir, dir);
        assert_eq!(f.header.version, PROTOCOL_VERSION);
        if dir == Dir::Request {
            assert!(open.is_none());
            let r = Request::decode(f.payload).unwrap();
            r.validate().unwrap();
            open = Some((f.header.seq, r));
        } else {
            let (seq, req) = open.take().expect("answer without request");
            assert_eq!(f.header.seq, seq);
            let resp = Response::decode(f.payload).unwrap();
            assert!(
                req.expects(&resp) && !matches!(resp, Response::Error(_)),
                "{resp:?}"
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 20);
}

#[test]
fn doc_byte_counts_are_measured() {
    let doc = doc();
    for chunk in [256, 512] {
        let (_, up, down) = render_transcript(chunk, 0x3A00);
        let total = up + down;
        let row = format!(
            "| {chunk} bytes | {up} B | {down} B | {total} B | {:.3} s |",
            total as f64 * 10.0 / 115_200.0
        );
        assert!(
            doc.contains(&row),
            "docs/protocol.md §8.3 should contain: {row}"
        );
    }
}
