//! Administration pages: customers, users, API tokens, the audit trail and the signed-in
//! user's account. Each handler reads the form, calls one use case of
//! [`crate::usecases::admin`] and renders; the rules of who may do what live there.

mod account;
mod audit;
mod customers;
mod tokens;
mod users;

pub use account::*;
pub use audit::*;
pub use customers::*;
pub use tokens::*;
pub use users::*;
