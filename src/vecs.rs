//! Pushing onto a vector without a stall: for the hot paths that collect large values into
//! vectors that usually have room (owned batch answers, reserved for the batch; the daemon's
//! requests decoded in place, in room kept from the last read).
//!
//! Why: `Vec::push` has a path that grows the vector (a call), so the compiler keeps the value
//! on the stack across it and copies it out afterwards in 16-byte loads of the smaller stores
//! that just built it. Those loads cannot be served from the store buffer and wait for the
//! stores to reach the cache (a store-forwarding stall): in `perf annotate`, a third of the
//! samples of the closure that builds each owned GenerateDataKey answer, and most of
//! `handle_frames`' own samples, at the push of each request the daemon decoded
//! (docs/performance-history.md, 2026-12-06, late night).

/// Pushes `x` onto `v`. The two arms are the same push: in the first the compiler knows there
/// is room, so that push has no path that grows the vector and the value's fields are stored
/// from registers straight into it. Keep the arms alike: with a `reserve` added to the second,
/// the compiler merges the two pushes back into one (checked in the code rustc 1.95
/// generates). Helps only where `v` usually has room (reserved for the batch, or kept from
/// the last one).
#[inline(always)]
#[allow(clippy::if_same_then_else)] // the condition is for the compiler: see above
pub(crate) fn push_in_room<T>(v: &mut Vec<T>, x: T) {
    if v.len() < v.capacity() {
        v.push(x)
    } else {
        v.push(x)
    }
}

#[cfg(test)]
mod tests {
    use super::push_in_room;

    #[test]
    fn a_value_is_pushed_once_in_order_in_the_room_reserved_and_beyond_it() {
        let mut v = Vec::with_capacity(2);
        let room = v.as_ptr();
        push_in_room(&mut v, "a".to_string());
        push_in_room(&mut v, "b".to_string());
        assert_eq!(v.as_ptr(), room, "no new allocation while there was room");
        push_in_room(&mut v, "c".to_string());
        assert_eq!(v, ["a", "b", "c"]);
    }
}
