//! The handler package under AWS's Lambda Runtime Interface Emulator: every query kind, concurrent
//! invocations, bad input, init failures, Bedrock (through a stub that checks the documented
//! Nova request shape) and S3 (moto).

mod arm64;
mod bedrock;
mod errors;
mod fixture;
#[path = "../common/footer.rs"]
mod footer;
mod hostile;
mod init;
mod queries;
mod s3;
