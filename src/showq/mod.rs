//! showq — views of the queue, shared by the commands and the admin
//! service: the age distribution by domain that `qshape` prints and the
//! metrics export.

pub mod shape;
