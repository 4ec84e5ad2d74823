#!/bin/sh
# azd postdeploy hook. Graph calls galsync's notification URLs with ?code=<function key>; the app learns that
# key from GALSYNC_WEBHOOK_KEY, a Key Vault reference to the secret galsync-webhook-key. This hook makes
# sure the host key "galsync-webhook" exists (the platform generates its value) and that the secret holds
# the same value, restarting the app only when the secret changed. Idempotent; prints what it did, never
# the key. Needs the Azure CLI signed in as the deployer (Key Vault Secrets Officer on the vault, granted
# by infra/app/rbac.bicep). Run it again with `azd hooks run postdeploy`.
set -eu

app="${AZURE_FUNCTION_APP_NAME:?not set: run through azd, or export the azd outputs first}"
group="${AZURE_RESOURCE_GROUP:?not set: run through azd, or export the azd outputs first}"
vault="${AZURE_KEY_VAULT_NAME:?not set: run through azd, or export the azd outputs first}"
key_name="galsync-webhook"
secret_name="galsync-webhook-key"

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

key=$(az functionapp keys list --resource-group "$group" --name "$app" \
    --query "functionKeys.\"$key_name\"" --output tsv)
if [ -z "$key" ]; then
    key=$(az functionapp keys set --resource-group "$group" --name "$app" \
        --key-type functionKeys --key-name "$key_name" --query value --output tsv)
    echo "galsync: created host key $key_name on $app"
else
    echo "galsync: host key $key_name exists on $app"
fi
if [ -z "$key" ]; then
    echo "galsync: could not read host key $key_name on $app" >&2
    exit 1
fi

stored=$(az keyvault secret show --vault-name "$vault" --name "$secret_name" \
    --query value --output tsv 2>/dev/null || true)
if [ "$stored" = "$key" ]; then
    echo "galsync: Key Vault $vault secret $secret_name is up to date"
    exit 0
fi

printf '%s' "$key" > "$work/key"
if ! az keyvault secret set --vault-name "$vault" --name "$secret_name" --file "$work/key" \
        --encoding utf-8 --content-type "text/plain" --output none; then
    echo "galsync: could not write $secret_name to Key Vault $vault. A new role assignment can take a few" \
        "minutes to apply: run 'azd hooks run postdeploy' again." >&2
    exit 1
fi
echo "galsync: stored host key $key_name in Key Vault $vault as $secret_name"

# A Key Vault reference is resolved again when the app restarts.
az functionapp restart --resource-group "$group" --name "$app" --output none
echo "galsync: restarted $app so that GALSYNC_WEBHOOK_KEY resolves to the new secret"
