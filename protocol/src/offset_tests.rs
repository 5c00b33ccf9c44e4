use super::*;
use proptest::prelude::*;

fn parse(text: &str) -> Result<LogOffset, InvalidOffset> {
    text.parse()
}

#[test]
fn parses_upstream_doctest_examples() {
    assert_eq!(parse("-1"), Ok(BEFORE_ALL));
    assert_eq!(parse("0_0"), Ok(LogOffset::new(0, 0)));
    assert_eq!(parse("11_13"), Ok(LogOffset::new(11, 13)));
    assert_eq!(parse("0_02"), Ok(LogOffset::new(0, 2)));
    assert_eq!(parse("0_inf"), Ok(LAST_BEFORE_REAL_LOG));
    for bad in [
        "1_2_3", "1_2 ", "10", "10_32.1", "0_-1", " 0_0", "now", "", "_", "1_", "_1",
    ] {
        assert_eq!(parse(bad), Err(InvalidOffset), "{bad:?}");
    }
    assert_eq!(InvalidOffset.to_string(), INVALID_OFFSET_MESSAGE);
}

#[test]
fn mirrors_integer_parse_leniency() {
    // Elixir's Integer.parse accepts signs, so these spellings are accepted upstream too.
    assert_eq!(parse("+5_+3"), Ok(LogOffset::new(5, 3)));
    assert_eq!(parse("-0_-0"), Ok(LogOffset::new(0, 0)));
    assert_eq!(parse("-1_0"), Ok(BEFORE_ALL));
    assert_eq!(parse("-1_00"), Ok(BEFORE_ALL));
    assert_eq!(parse("-1_1"), Err(InvalidOffset));
    assert_eq!(parse("-1_inf"), Err(InvalidOffset));
    assert_eq!(parse("-2_0"), Err(InvalidOffset));
    assert_eq!(parse("inf_0"), Err(InvalidOffset));
    assert_eq!(parse("1_INF"), Err(InvalidOffset));
}

#[test]
fn bounds_are_checked() {
    let max = u64::MAX;
    assert_eq!(
        parse(&format!("{max}_{}", max - 1)),
        Ok(LogOffset::new(max, max - 1))
    );
    // `OP_INF` is reserved for `inf`.
    assert_eq!(parse(&format!("1_{max}")), Err(InvalidOffset));
    assert_eq!(parse(&format!("{}0_1", max)), Err(InvalidOffset));
    assert_eq!(parse(&format!("1_{}", "9".repeat(80))), Err(InvalidOffset));
}

#[test]
fn displays_like_upstream() {
    assert_eq!(BEFORE_ALL.to_string(), "-1");
    assert_eq!(FIRST.to_string(), "0_0");
    assert_eq!(LogOffset::new(10, 3).to_string(), "10_3");
    assert_eq!(LAST_BEFORE_REAL_LOG.to_string(), "0_inf");
    assert_eq!(snapshot_chunk(7).to_string(), "0_7");
    assert_eq!(LogOffset::new(26800584, OP_INF).to_string(), "26800584_inf");
}

#[test]
fn orders_like_upstream_compare() {
    assert!(LogOffset::new(10, 0) < LogOffset::new(10, 1));
    assert!(LogOffset::new(9, 1) < LogOffset::new(10, 1));
    assert!(LogOffset::new(11, 1) > LogOffset::new(10, 1));
    assert!(FIRST > BEFORE_ALL);
    assert!(LogOffset::new(10, 5) < LogOffset::new(10, OP_INF));
    assert!(LogOffset::new(9, OP_INF) < LogOffset::new(10, 0));
    assert!(LAST_BEFORE_REAL_LOG < LogOffset::new(1, 0));
    assert!(snapshot_chunk(u64::MAX - 1) < LAST_BEFORE_REAL_LOG);
}

#[test]
fn offset_param_parses_now_and_minus_one() {
    assert_eq!("now".parse(), Ok(OffsetParam::Now));
    assert_eq!("-1".parse(), Ok(OffsetParam::BeforeAll));
    assert_eq!("-1_0".parse(), Ok(OffsetParam::BeforeAll));
    assert_eq!("3_4".parse(), Ok(OffsetParam::At(LogOffset::new(3, 4))));
    assert_eq!("NOW".parse::<OffsetParam>(), Err(InvalidOffset));
    assert_eq!(OffsetParam::Now.to_string(), "now");
    assert!(OffsetParam::BeforeAll < FIRST);
    assert_eq!(OffsetParam::Now.partial_cmp(&FIRST), None);
}

fn any_offset() -> impl Strategy<Value = LogOffset> {
    prop_oneof![
        Just(BEFORE_ALL),
        (any::<u64>(), 0..OP_INF).prop_map(|(tx, op)| LogOffset::new(tx, op)),
        any::<u64>().prop_map(|tx| LogOffset::new(tx, OP_INF)),
        (0u64..4, 0u64..4).prop_map(|(tx, op)| LogOffset::new(tx, op)),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_round_trips(offset in any_offset()) {
        prop_assert_eq!(parse(&offset.to_string()), Ok(offset));
    }

    #[test]
    fn ordering_matches_tuple_ordering(a in any_offset(), b in any_offset()) {
        let key = |o: LogOffset| if o.is_before_all() { (0u8, 0, 0) } else { (1, o.tx, o.op) };
        prop_assert_eq!(a.cmp(&b), key(a).cmp(&key(b)));
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,24}") {
        let _ = parse(&text);
        let _ = text.parse::<OffsetParam>();
    }
}

#[test]
fn sse_resume_point_is_after_the_whole_transaction() {
    let end = LogOffset::new(1000, 6);
    assert_eq!(end.sse_resume_lsn(), 1001);
    // What the client sends back: `<lsn>_0`.
    let resume: LogOffset = "1001_0".parse().unwrap();
    assert!(resume > end, "after every entry of the transaction");
    assert!(
        resume < LogOffset::new(1008, 0),
        "before any later transaction"
    );
    assert!(resume.resumes_after(&end));
    assert!(!LogOffset::new(1001, 2).resumes_after(&end));
    assert!(!LogOffset::new(1002, 0).resumes_after(&end));
    assert!(!LogOffset::new(1000, 0).resumes_after(&end));
    // Virtual offsets are never shifted.
    assert_eq!(protocol_snapshot_end().sse_resume_lsn(), 0);
    assert!(!LogOffset::new(1, 0).resumes_after(&protocol_snapshot_end()));
}

fn protocol_snapshot_end() -> LogOffset {
    crate::offset::snapshot_chunk(3)
}
