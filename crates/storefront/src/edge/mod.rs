//! The HTTP edge: the public listener, who is asking (client addresses and
//! the proxies believed to tell them), login limits, and the shape of the
//! shop's own middleware.

pub mod after_response;
pub mod client_addr;
pub mod ratelimit;
pub mod serve;
pub mod trusted_proxies;
