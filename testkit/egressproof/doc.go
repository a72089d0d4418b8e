// Package egressproof holds only tests: the egress proof, which runs the
// real veil binary in a network namespace whose one link is captured, and
// checks that the only bytes that leave the box are MQTT 3.1.1 footfall
// reports and status messages to the configured broker.
//
// Parts (all in _test.go files):
//
//   - pcap_test.go: a classic libpcap reader and writer and a decoder of
//     Ethernet, ARP, IPv4, IPv6, TCP and UDP.
//   - tcp_test.go: reassembly of one direction of a TCP connection from its
//     segments (retransmissions and duplicates folded, gaps and conflicting
//     retransmissions rejected).
//   - mqtt_test.go: a strict MQTT 3.1.1 control packet parser (and encoder,
//     for tests) that splits a byte stream into packets.
//   - policy_test.go: the rule itself, applied to decoded frames.
//   - netns_test.go: network namespaces, mosquitto, tcpdump and veil as
//     processes the test owns and cleans up.
//   - egress_proof_test.go: TestEgressProof, which puts it all together.
//   - parse_test.go, policy_check_test.go, fuzz_test.go: the parsers and the
//     policy on hand-built bytes (every kind of forbidden traffic is caught),
//     and fuzz tests of the parsers of outside input.
package egressproof
