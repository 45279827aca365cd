//! The field names of an upstream connection's last response head, kept
//! for its next one. An upstream answers with the same names in the same
//! order response after response, so a name spelt as at its place last
//! time is cloned (a copy for a standard name, a reference count for
//! another) instead of parsed again: `HeaderName::from_bytes` lower-cases
//! the name, matches it against the standard ones and, for any other name,
//! allocates its lower-cased copy, every response. With the names resolved
//! first, the decoder also tells the framing fields apart by a compare of
//! standard names instead of a case-insensitive compare of each raw name.

use http::header::HeaderName;

/// One name per place of the longest head seen (at most
/// `decode::MAX_HEADERS`: httparse parses no more), with its spelling.
#[derive(Debug, Default)]
pub struct Names {
    names: Vec<HeaderName>,
    /// Each name as the upstream wrote it: the same spelling again is the
    /// same name, found by a byte compare (a case-insensitive compare of
    /// every name cost as much as parsing it).
    raw: Vec<Box<str>>,
}

impl Names {
    /// The names of a head's fields, `raw` as the upstream wrote them, in
    /// order: at each place the last head's name when it is spelt the same,
    /// else parsed and remembered there. `None`: one is not a valid field
    /// name.
    pub fn of<'r>(&mut self, raw: impl IntoIterator<Item = &'r str>) -> Option<&[HeaderName]> {
        let mut len = 0;
        for (i, raw) in raw.into_iter().enumerate() {
            if self.raw.get(i).is_some_and(|known| **known == *raw) {
                len = i + 1;
                continue;
            }
            let name = HeaderName::from_bytes(raw.as_bytes()).ok()?;
            if i < self.names.len() {
                self.names[i] = name;
                self.raw[i] = raw.into();
            } else {
                self.names.push(name);
                self.raw.push(raw.into());
            }
            len = i + 1;
        }
        Some(&self.names[..len])
    }
}

#[cfg(test)]
mod tests {
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};

    use super::*;

    #[test]
    fn names_at_their_places_again_are_the_same_names() {
        let mut n = Names::default();
        let first = n
            .of(["Content-Type", "X-Custom-Thing", "content-length"])
            .unwrap()
            .to_vec();
        assert_eq!(first[0], CONTENT_TYPE);
        assert_eq!(first[1].as_str(), "x-custom-thing");
        assert_eq!(first[2], CONTENT_LENGTH);
        // Another case, the same names.
        let again = n
            .of(["content-type", "X-CUSTOM-THING", "Content-Length"])
            .unwrap();
        assert_eq!(first, again);
        // A shorter head: its own names only; a longer one after it.
        assert_eq!(n.of(["Content-Type"]).unwrap(), [CONTENT_TYPE]);
        assert!(n.of(std::iter::empty()).unwrap().is_empty());
        let longer = n.of(["Server", "x-custom-thing", "Date", "x-new"]).unwrap();
        assert_eq!(longer[0], SERVER);
        assert_eq!(longer[1].as_str(), "x-custom-thing");
        assert_eq!(longer[2], DATE);
        assert_eq!(longer[3].as_str(), "x-new");
    }

    #[test]
    fn a_bad_name_is_refused_whatever_was_remembered() {
        let mut n = Names::default();
        n.of(["Date", "x-a"]).unwrap();
        assert!(n.of(["da te"]).is_none());
        assert!(n.of(["Date", "x-a:"]).is_none());
        assert!(n.of(["Date", "x-a", ""]).is_none());
        // What is remembered stays valid names.
        assert_eq!(n.of(["date", "X-A"]).unwrap()[1].as_str(), "x-a");
    }

    #[test]
    fn heads_on_one_connection_share_their_names() {
        let mut names = Names::default();
        let mut b = bytes::BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nX-Bar: 1\r\nContent-Length: 0\r\n\r\n\
               HTTP/1.1 200 OK\r\nx-foo: 2\r\ncontent-length: 0\r\n\r\n"[..],
        );
        let mut next = || {
            super::super::decode::response_head(&mut b, false, &mut names, false)
                .unwrap()
                .unwrap()
                .headers
        };
        let (first, second) = (next(), next());
        assert_eq!(first["x-bar"], "1");
        assert_eq!(first[CONTENT_LENGTH], "0");
        assert!(!second.contains_key("x-bar"), "{second:?}");
        assert_eq!(second["x-foo"], "2");
        assert_eq!(second[CONTENT_LENGTH], "0");
    }
}
