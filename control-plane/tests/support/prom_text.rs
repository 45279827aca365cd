//! A strict, minimal parser of the Prometheus / OpenMetrics text format, for
//! the `/metrics` tests (the `prometheus-parse` crate would add a second
//! `itertools`). It refuses what it does not understand rather than skip it.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: every family's declared type, and the samples.
#[derive(Debug)]
pub struct Exposition {
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses strictly: every line is a comment (`HELP`, `TYPE`, `UNIT`, and
    /// `EOF` last) or a sample of a declared family; anything else panics.
    pub fn parse(text: &str) -> Exposition {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
        for (i, line) in lines.iter().enumerate() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                match parts.next() {
                    Some("EOF") => assert_eq!(i + 1, lines.len(), "# EOF is last"),
                    Some("TYPE") => {
                        let name = parts.next().expect("TYPE has a name");
                        let kind = parts.next().expect("TYPE has a type");
                        let known = ["counter", "gauge", "histogram", "summary", "info"];
                        assert!(known.contains(&kind), "{line}");
                        let before = types.insert(name.to_owned(), kind.to_owned());
                        assert!(before.is_none(), "{name} declared twice");
                    }
                    Some("HELP" | "UNIT") => assert!(parts.next().is_some(), "{line}"),
                    _ => panic!("unknown comment line: {line}"),
                }
                continue;
            }
            let s = parse_sample(line);
            assert!(
                family_of(&s.name, &types).is_some(),
                "sample of an undeclared family: {line}"
            );
            samples.push(s);
        }
        Exposition { types, samples }
    }

    /// The value of the sample with exactly these labels, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut found = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want);
        let first = found.next().map(|s| s.value);
        assert!(found.next().is_none(), "{name} {labels:?} appears twice");
        first
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    pub fn names(&self) -> Vec<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

/// The family a sample name belongs to: itself, or minus a suffix its type
/// allows.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> Option<&'a str> {
    if types.get(name).is_some_and(|t| t == "gauge" || t == "info") {
        return Some(name);
    }
    let suffixes: &[(&str, &[&str])] = &[
        ("counter", &["_total", "_created"]),
        ("histogram", &["_bucket", "_count", "_sum", "_created"]),
        ("summary", &["_count", "_sum", "_created"]),
    ];
    suffixes.iter().find_map(|(kind, ends)| {
        ends.iter().find_map(|end| {
            let family = name.strip_suffix(end)?;
            (types.get(family)? == kind).then_some(family)
        })
    })
}

pub fn parse_sample(line: &str) -> Sample {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let end = line
        .find(|c: char| !is_name(c))
        .expect("a sample has a value");
    let (name, mut rest) = line.split_at(end);
    assert!(!name.is_empty(), "no metric name: {line}");
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let mut key = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                key.push(c);
                chars.next();
            }
            if key.is_empty() {
                assert_eq!(chars.next().map(|(_, c)| c), Some('}'), "{line}");
                break;
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('='), "{line}");
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}: {line}"),
                    },
                    Some(c) => value.push(c),
                    None => panic!("unterminated label value: {line}"),
                }
            }
            assert!(
                labels.insert(key, value).is_none(),
                "repeated label: {line}"
            );
            match chars.next().map(|(_, c)| c) {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("expected , or }} after a label, got {other:?}: {line}"),
            }
        }
        let consumed = chars.peek().map_or(after.len(), |&(i, _)| i);
        rest = &after[consumed..];
    }
    let rest = rest.strip_prefix(' ').expect("a space before the value");
    let mut fields = rest.split(' ');
    let value = fields.next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?}: {line}")),
    };
    // An optional timestamp; exemplars (`# {...}`) are not expected here.
    if let Some(ts) = fields.next() {
        ts.parse::<f64>()
            .unwrap_or_else(|_| panic!("unexpected after the value: {line}"));
    }
    assert!(fields.next().is_none(), "trailing fields: {line}");
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}
