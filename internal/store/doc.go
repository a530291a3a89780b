// Package store keeps the balancer's small durable state in one bbolt file: plans and their approvals,
// maintenance flags, the write-ahead migration journal and the webhook dedupe set.
//
// Every write is one fsync'd bbolt transaction, so what a method reports as written survives a crash. The
// journal is written before a migration is requested and updated after, which lets the executor reconcile
// after a restart without repeating or forgetting a migration. A file that cannot be read or is corrupt is an
// error at Open naming the path; it is never replaced.
package store
