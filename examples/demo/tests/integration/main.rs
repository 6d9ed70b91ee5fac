//! Integration tests of the demo service, proxy, load generator and binary, against
//! real sockets on the loopback interface. One binary, one file per topic.
//!
//! No assertion depends on how fast this machine is: latencies are only checked as
//! lower bounds (a sleep never ends early) or by comparing 0 ms with 200 ms, and every
//! wait has a generous timeout so a broken build fails instead of hanging.

mod binary;
mod load;
mod proxy;
mod service;
mod stack;
mod util;
