//! Redis routing: shared by every server node. (Being written.)
