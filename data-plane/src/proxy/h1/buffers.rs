//! Read buffers lent per thread to HTTP/1 connections, both sides: a
//! connection holds one while bytes are in it or a read is under way, and
//! gives it back once it is empty and nothing else holds its bytes (a
//! read that would wait). Last in, first out: the buffer a read takes is
//! the one last given back, whose first cache lines are still warm.
//! Why: a keep-alive connection keeping its own 8 KB while idle meant
//! 10,000 idle clients held 80 MB; nginx frees an idle connection's
//! buffers the same way. It costs two lends and two returns a request
//! (260 instructions); tried against the CPU gap at 200 connections, it
//! did not move it (docs/PERFORMANCE.md).

use std::cell::RefCell;

use bytes::BytesMut;

/// A buffer's size, and the least room a read is given.
pub const READ_SIZE: usize = 8 * 1024;

/// The most buffers a thread keeps for reuse; past it, given-back ones
/// are freed.
const KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// Room for a read in `buf`: at least half of `size` (`READ_SIZE` or
/// more), from a lent buffer when it has none, else taken back from the
/// front of its own when nothing else holds it, else grown.
pub fn ready(buf: &mut BytesMut, size: usize) {
    if buf.capacity() == 0
        && let Some(lent) = FREE.with_borrow_mut(Vec::pop)
    {
        *buf = lent;
    } else if buf.is_empty() {
        // Back to the start, which the last exchange warmed, rather than
        // on into lines untouched for a while.
        let _ = buf.try_reclaim(READ_SIZE);
    }
    if buf.capacity() - buf.len() < size / 2 {
        buf.reserve(size);
    }
}

/// Gives `buf` back if it is empty and its memory is its own again (the
/// request or answer parsed from it is gone); it is left without one.
pub fn give_back(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 || !buf.try_reclaim(READ_SIZE) {
        return;
    }
    // A buffer a large body grew is freed rather than kept.
    if buf.capacity() > 2 * READ_SIZE {
        *buf = BytesMut::new();
        return;
    }
    let lent = std::mem::take(buf);
    FREE.with_borrow_mut(|free| {
        if free.len() < KEPT {
            free.push(lent);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_buffer_given_back_is_the_next_one_lent() {
        let mut a = BytesMut::new();
        ready(&mut a, READ_SIZE);
        assert!(a.capacity() >= READ_SIZE);
        let at = a.as_ptr();
        give_back(&mut a);
        assert_eq!(a.capacity(), 0, "given back");
        let mut b = BytesMut::new();
        ready(&mut b, READ_SIZE);
        assert_eq!(b.as_ptr(), at, "the same memory, lent again");
    }

    #[test]
    fn a_buffer_whose_bytes_are_still_held_or_that_holds_bytes_is_kept() {
        let mut a = BytesMut::new();
        ready(&mut a, READ_SIZE);
        a.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        give_back(&mut a);
        assert!(!a.is_empty(), "holds bytes: kept");
        let head = a.split().freeze();
        give_back(&mut a);
        assert!(a.capacity() > 0, "its bytes are still in use: kept");
        drop(head);
        give_back(&mut a);
        assert_eq!(a.capacity(), 0);
    }

    #[test]
    fn large_buffers_are_freed_not_kept() {
        let mut a = BytesMut::new();
        ready(&mut a, 128 * 1024);
        assert!(a.capacity() >= 64 * 1024);
        give_back(&mut a);
        assert_eq!(a.capacity(), 0);
        // Whatever comes next is a fresh or a kept small buffer.
        let mut b = BytesMut::new();
        ready(&mut b, READ_SIZE);
        assert!(b.capacity() <= 2 * READ_SIZE);
    }
}
