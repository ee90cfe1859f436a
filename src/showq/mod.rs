//! showq — views of the queue, shared by the commands and the admin
//! service: the listings of `mailq` and `postqueue -j`, and the age
//! distribution by domain that `qshape` prints.

pub mod listing;
pub mod shape;
