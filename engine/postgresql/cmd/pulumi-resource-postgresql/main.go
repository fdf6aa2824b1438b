// Command pulumi-resource-postgresql is the bridged postgresql resource plugin.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"

	"pg-tenants/engine/postgresql/provider"
)

// schema.json is written by pulumi-tfgen-postgresql during `npm run engine` (never committed).
//
//go:embed schema.json
var schema []byte

func main() {
	tfbridge.Main("postgresql", provider.Version, provider.Info(), schema)
}
