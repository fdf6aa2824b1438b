// Package provider maps the Terraform provider cyrilgdn/terraform-provider-postgresql onto
// Pulumi tokens, so that the bridged plugin answers to the same types and properties as the
// @pulumi/postgresql SDK.
package provider

import (
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	bridgetokens "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/terraform-providers/terraform-provider-postgresql/postgresql"
)

// Version is the plugin version the @pulumi/postgresql SDK asks the engine for.
const Version = "3.18.1"

const (
	pkg = "postgresql"
	mod = "index"
)

// Info is the bridge's description of the provider: tokens in one module (`postgresql:index/...`),
// the two explicit names the SDK uses, and the provider defaults the SDK documents.
func Info() tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(postgresql.Provider()),
		Name:        pkg,
		Version:     Version,
		Description: "A Pulumi package for creating and managing postgresql cloud resources.",
		License:     "Apache-2.0",
		GitHubOrg:   "cyrilgdn",
		Config: map[string]*tfbridge.SchemaInfo{
			"sslmode":         {Default: &tfbridge.DefaultInfo{EnvVars: []string{"PGSSLMODE"}}},
			"connect_timeout": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"PGCONNECT_TIMEOUT"}, Value: 180}},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"postgresql_grant_role": {
				Tok:    tokenOf("GrantRole"),
				Fields: map[string]*tfbridge.SchemaInfo{"grant_role": {CSharpName: "GrantRoleName"}},
			},
			"postgresql_grant": {Tok: tokenOf("Grant"), DeleteBeforeReplace: true},
		},
	}
	// The SDK keeps the historical token DefaultPrivileg with DefaultPrivileges as its alias.
	info.RenameResourceWithAlias("postgresql_default_privileges", tokenOf("DefaultPrivileg"),
		tokenOf("DefaultPrivileges"), mod, mod, &tfbridge.ResourceInfo{})
	info.MustComputeTokens(bridgetokens.SingleModule("postgresql_", mod, bridgetokens.MakeStandard(pkg)))
	info.SetAutonaming(255, "-")
	return info
}

// tokenOf names a resource as the SDK does: `postgresql:index/<camelName>:<Name>`.
func tokenOf(name string) tokens.Type {
	return tokens.Type(pkg + ":" + mod + "/" + strings.ToLower(name[:1]) + name[1:] + ":" + name)
}
