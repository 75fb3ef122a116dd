// Command etcd is etcd's own server entry point, built from the same module versions Kubernetes pins, so the
// tests run the etcd release the API server was tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
