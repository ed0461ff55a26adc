//! The real `bootstrap` binary under a local Lambda Runtime API: every query kind, concurrent
//! invocations, bad input, init failures, Bedrock (through a stub that checks the documented
//! Nova request shape) and S3 (moto).

mod bedrock;
mod errors;
mod fixture;
mod init;
mod queries;
mod s3;
