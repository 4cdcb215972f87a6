// Package test holds pgnoded's black-box integration and failure tests: they
// run the built pgnoded binary against a real etcd and real postgres, and judge
// it only through what operators and HAProxy see (REST, SQL, etcd keys).
//
// One harness serves every test (files *_test.go, build tag integration):
//   - Cluster and Node (harness_test.go): N nodes of one Daemon (pgnoded, or
//     Patroni 3.0.2 for the side-by-side benchmarks, patroni_harness_test.go)
//     placed by a Network (network_test.go): loopback ports with an embedded
//     etcd (StartCluster), or one namespace per node of a Topology
//     (netns_topology_test.go, Topology.StartPGCluster) with its VIP, links and
//     etcd members;
//   - every node's config comes from one template, internal/testenv/nodeconf
//     (which tools/demo renders its nodes with too);
//   - every long-running program is a Proc (proc_test.go);
//   - one acknowledged-write workload, Writer (writer_test.go), and one
//     poller, pollEvery / pollFor / WaitFor (poll_test.go);
//   - synchronous replication: ClusterOptions.Sync (nodeconf.Sync), the /sync
//     key and Cluster.WaitSync (sync_helpers_test.go); the sync tests run on
//     pgnoded, and on Patroni 3.0.2 with PGNODED_SYNC_PATRONI=1 to check the
//     test itself.
//
// The scenarios (Test and Benchmark functions and the tables they range over)
// sit on top of it.
package test
