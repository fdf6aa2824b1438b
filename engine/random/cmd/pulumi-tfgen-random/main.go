// Command pulumi-tfgen-random writes the plugin's Pulumi schema and bridge metadata.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"pg-tenants/engine/random/provider"
)

func main() {
	// Empty metadata makes tfgen write bridge-metadata.json beside the schema.
	tfgen.Main("random", provider.Version, provider.Info([]byte("{}")))
}
