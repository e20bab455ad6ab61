//! Redis Cluster destinations: key slots ([`slot`]), where a command's keys are ([`keys`]), the
//! slot map ([`topology`]) and the router that sends each command to the master owning its
//! slot ([`route`]). All pure; the connections are the `dest` writers, one per master.

pub mod keys;
pub mod route;
pub mod slot;
pub mod topology;

pub use route::{RouteError, Router};
pub use topology::{NodeAddr, Topology};
