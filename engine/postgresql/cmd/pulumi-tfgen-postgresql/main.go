// Command pulumi-tfgen-postgresql writes the plugin's Pulumi schema from the provider mapping.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"pg-tenants/engine/postgresql/provider"
)

func main() {
	tfgen.Main("postgresql", provider.Version, provider.Info())
}
