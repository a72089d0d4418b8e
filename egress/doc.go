// Package egress is the only thing that sends data off the box: footfall
// counts (people in and out per time window per camera per counting line),
// to head office over MQTT. Nothing else leaves, and the types say so.
//
// Parts:
//
//   - Report (report.go) is the wire message, exactly its ten fields.
//     Report.Marshal writes it; ParseReport, which head office uses, reads it
//     strictly (unknown, missing, repeated or null fields, trailing data and
//     invalid values are errors).
//   - Outbox (outbox.go) is the on-disk queue of closed windows, in a
//     directory it owns.
//   - Publisher (publisher.go) sends the outbox to the broker. Its payloads
//     are Report.Marshal output and the fixed strings StatusOnline and
//     StatusOffline; it has no method that takes bytes or a topic.
//
// Guarantees:
//
//   - Closed means durable. Outbox.Add writes the report to its own file,
//     syncs it, renames it into place and syncs the directory before it
//     returns nil; a window counts as closed only then.
//   - Removed only after PUBACK. A report leaves the outbox when the broker
//     has acknowledged it at QoS 1, never earlier. A broker outage, a lost
//     connection or a crash keeps it; it is sent again after reconnecting
//     or, after a restart, replayed with every other stored report in
//     (boot, seq) order.
//   - Identity. Every OpenOutbox is a new boot: a counter persisted in the
//     directory is incremented (written to a temporary file, synced,
//     renamed, directory synced), and Seq restarts at 1. (device, boot, seq)
//     is therefore unique forever as long as the directory is kept. Delivery
//     is at least once; head office de-duplicates on that triple.
//   - Bounded, never dropping. At MaxEntries stored windows, Add merges the
//     two oldest windows of one camera and line that have never been handed
//     to the network (a persisted hand-out watermark says which) into one
//     report spanning both, with their counts summed, so no count is lost
//     or counted twice (head office sees the longer window and a gap in
//     seq); when nothing can be merged Add returns ErrFull and the caller
//     keeps the counts.
//   - Quarantine. At open, an entry that can never be sent (unparsable,
//     invalid, truncated, empty, misnamed, or for another store or device)
//     is moved to quarantine/ with a logged warning naming the file and the
//     error; the rest still go out.
//
// Topics are <prefix>/<store>/<device>/footfall (reports, QoS 1, not
// retained) and <prefix>/<store>/<device>/status (StatusOnline on connect,
// StatusOffline on clean shutdown and as the last will; QoS 1, retained).
package egress
