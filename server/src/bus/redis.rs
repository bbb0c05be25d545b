//! Redis pub/sub bus. (Being written.)
