// CoreDNS for the test cluster's node: upstream CoreDNS (the version pinned in go.mod) with only the
// plugins the cluster's Corefile uses, so the build skips the cloud-provider plugins. The cluster
// serves its own zones only (no forward plugin: pods must not resolve or reach outside names).
// Test infrastructure only; see docs/testing.md.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

// Same relative order as upstream plugin.cfg (the order a request passes through the plugins).
var directives = []string{
	"errors",
	"log",
	"health",
	"ready",
	"kubernetes",
	"cache",
	"loadbalance",
	"template",
}

func main() {
	dnsserver.Directives = directives
	coremain.Run()
}
