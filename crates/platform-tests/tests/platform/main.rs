//! Whole-platform tests: each boots every service, the gateway and NGINX on loopback against
//! real PostgreSQL, Redis, Apache Kafka and an SMTP server, and drives them through NGINX as
//! a customer, a merchant, an operator or an attacker would. One binary, a module per area.

mod harness;

mod attacks;
mod authorizations;
mod emails;
mod identity;
mod merchants;
mod money;
mod providers;
mod replicas;
mod seed;
mod stats;
mod webhooks;
