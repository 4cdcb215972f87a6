// Package ctl implements pgnodectl, the operator CLI that mirrors patronictl:
// it reads the cluster from etcd and sends actions to the members' REST APIs.
package ctl
