// Package test holds pgnoded's black-box integration and failure tests: they
// run the built pgnoded binary against a real etcd and real postgres, and judge
// it only through what operators and HAProxy see (REST, SQL, etcd keys).
package test
