//! Changing stored events as someone with access to the ledger's files would, for the tamper
//! tests. A stored value holds one frame, or up to 16 frames written together (see
//! docs/hash-format.md).

use std::ops::Range;

use careledger_core::storage::frames_in;

fn frame_key(position: u64) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// The key of the stored value holding `position`, the value, and where the frame lies in it.
pub fn locate(db: &sled::Db, position: u64) -> (sled::IVec, Vec<u8>, Range<usize>) {
    let (key, value) = db
        .range(frame_key(0)..=frame_key(position))
        .next_back()
        .expect("a stored value at or before the position")
        .unwrap();
    let first = u64::from_be_bytes(key[1..9].try_into().unwrap());
    let (_, frame) = frames_in(first, &value)
        .find(|(p, _)| *p == position)
        .expect("the position is stored");
    let start = frame.as_ptr() as usize - value.as_ptr() as usize;
    (key, value.to_vec(), start..start + frame.len())
}

/// Applies `change` to the stored bytes of the frame at `position`.
pub fn change(db: &sled::Db, position: u64, change: impl FnOnce(&mut [u8])) {
    let (key, mut value, frame) = locate(db, position);
    change(&mut value[frame]);
    db.insert(key, value).unwrap();
    db.flush().unwrap();
}

/// XORs `mask` into one byte of the frame at `position` (`offset` modulo the frame's length).
pub fn flip(db: &sled::Db, position: u64, offset: usize, mask: u8) {
    change(db, position, |frame| {
        let at = offset % frame.len();
        frame[at] ^= mask;
    });
}

/// Removes the stored value holding `position`: one frame, or a group written together.
pub fn remove_value(db: &sled::Db, position: u64) {
    let (key, _, _) = locate(db, position);
    db.remove(key).unwrap();
    db.flush().unwrap();
}
