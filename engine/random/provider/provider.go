// Package provider maps the upstream Terraform random provider onto the tokens of the
// @pulumi/random SDK (`random:index/random<Name>:Random<Name>`).
package provider

import (
	"context"
	"errors"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

// Version is the plugin version the @pulumi/random SDK asks the engine for.
const Version = "4.21.2"

// Info describes the bridged provider. metadata is the bridge metadata that tfgen writes beside
// the schema (renamed properties); nil while tfgen itself runs.
func Info(metadata []byte) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:           pf.ShimProvider(shim.NewProvider()),
		Name:        "random",
		Version:     Version,
		Description: "A Pulumi package to safely use randomness in Pulumi programs.",
		License:     "Apache-2.0",
		Resources: map[string]*tfbridge.ResourceInfo{
			// RandomBytes has no id of its own upstream; the SDK's id is its base64 value.
			"random_bytes": {ComputeID: idFromBase64},
		},
		EnableAccurateBridgePreview: true,
		EnableRawStateDelta:         true,
	}
	if metadata != nil {
		info.MetadataInfo = tfbridge.NewProviderMetadata(metadata)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}))
	return info
}

func idFromBase64(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
	value, ok := state["base64"]
	if !ok {
		return "", errors.New("random_bytes state has no base64 property")
	}
	if value.IsSecret() {
		value = value.SecretValue().Element
	}
	if !value.IsString() {
		return "", errors.New("random_bytes base64 property is not a string")
	}
	return resource.ID(value.StringValue()), nil
}
