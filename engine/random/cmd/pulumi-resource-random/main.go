// Command pulumi-resource-random is the bridged random resource plugin.
package main

import (
	"context"
	_ "embed"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"pg-tenants/engine/random/provider"
)

// Both files are written by pulumi-tfgen-random during `npm run engine` (never committed).
var (
	//go:embed schema.json
	schema []byte
	//go:embed bridge-metadata.json
	metadata []byte
)

func main() {
	pf.Main(context.Background(), "random", provider.Info(metadata), pf.ProviderMetadata{PackageSchema: schema})
}
