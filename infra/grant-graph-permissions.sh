#!/usr/bin/env bash
# Grants galsync's identity the Microsoft Graph application roles it needs, and no others (least privilege,
# see "Deploy to Azure" in README.md for why each one):
#   directory: User.Read.All, OrgContact.Read.All, GroupMember.Read.All, ProfilePhoto.Read.All
#   mailboxes: Contacts.ReadWrite, MailboxSettings.Read
# Idempotent: a role already granted is skipped; prints one line per role saying what it did.
#
# With --mailbox-access scoped, the mailbox roles are NOT granted tenant-wide, and a tenant-wide grant of
# them is removed: Exchange RBAC for Applications (infra/scope-mailboxes.ps1, run it first) then grants
# them for the target mailboxes only. Entra grants and Exchange RBAC grants add up, so the tenant-wide
# grant must go for the scope to mean anything.
#
# Usage: infra/grant-graph-permissions.sh [--principal-id OBJECT_ID | --app-id CLIENT_ID]
#                                         [--mailbox-access tenant|scoped] [--dry-run]
#   --principal-id  object id of the service principal to grant (default: the managed identity azd
#                   deployed, AZURE_MANAGED_IDENTITY_PRINCIPAL_ID from the azd environment)
#   --app-id        client id of an app registration instead (client_secret or certificate mode)
#   --dry-run       print what would change, change nothing
# Needs the Azure CLI signed in (az login) as a Privileged Role Administrator or Global Administrator.
set -euo pipefail

readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"  # Microsoft Graph, the same in every cloud
readonly DIRECTORY_ROLES=(User.Read.All OrgContact.Read.All GroupMember.Read.All ProfilePhoto.Read.All)
readonly MAILBOX_ROLES=(Contacts.ReadWrite MailboxSettings.Read)

principal_id=""
app_id=""
mailbox_access="tenant"
dry_run=0

die() { echo "grant-graph-permissions: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --principal-id) [ $# -ge 2 ] || die "--principal-id needs a value"; principal_id="$2"; shift 2 ;;
        --app-id) [ $# -ge 2 ] || die "--app-id needs a value"; app_id="$2"; shift 2 ;;
        --mailbox-access)
            [ $# -ge 2 ] || die "--mailbox-access needs a value"
            case "$2" in tenant|scoped) mailbox_access="$2" ;; *) die "--mailbox-access is '$2'; expected tenant or scoped" ;; esac
            shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

[ -z "$principal_id" ] || [ -z "$app_id" ] || die "give --principal-id or --app-id, not both"
if [ -n "$app_id" ]; then
    principal_id=$(az ad sp show --id "$app_id" --query id --output tsv) \
        || die "no service principal for app id $app_id in this tenant (az ad sp create --id $app_id)"
elif [ -z "$principal_id" ]; then
    principal_id="${AZURE_MANAGED_IDENTITY_PRINCIPAL_ID:-}"
    if [ -z "$principal_id" ] && command -v azd >/dev/null 2>&1; then
        principal_id=$(azd env get-value AZURE_MANAGED_IDENTITY_PRINCIPAL_ID 2>/dev/null || true)
    fi
    [ -n "$principal_id" ] || die "no principal: run 'azd up' first, or pass --principal-id or --app-id"
fi
[[ "$principal_id" =~ ^[0-9a-fA-F-]{36}$ ]] || die "principal id '$principal_id' is not an object id (GUID)"

graph_root=$(az cloud show --query endpoints.microsoftGraphResourceId --output tsv)
graph="${graph_root%/}/v1.0"
graph_sp=$(az ad sp show --id "$GRAPH_APP_ID" --query id --output tsv)

# Application roles Microsoft Graph offers: value -> id.
declare -A role_id=()
while IFS=$'\t' read -r value id; do
    [ -n "$value" ] && role_id["$value"]="$id"
done < <(az ad sp show --id "$GRAPH_APP_ID" \
    --query "appRoles[?contains(allowedMemberTypes, 'Application')].[value, id]" --output tsv)

# Graph roles the principal holds now: role id -> assignment id.
declare -A assigned=()
url="$graph/servicePrincipals/$principal_id/appRoleAssignments"
while [ -n "$url" ]; do
    while IFS=$'\t' read -r app_role assignment; do
        [ -n "$app_role" ] && assigned["$app_role"]="$assignment"
    done < <(az rest --method get --url "$url" \
        --query "value[?resourceId=='$graph_sp'].[appRoleId, id]" --output tsv)
    url=$(az rest --method get --url "$url" --query '"@odata.nextLink"' --output tsv)
done

prefix=""
[ "$dry_run" -eq 0 ] || prefix="(dry run) "
granted=0; skipped=0; removed=0

grant() {
    local role="$1" id="${role_id[$1]:-}"
    [ -n "$id" ] || die "Microsoft Graph offers no application role '$role' in this cloud"
    if [ -n "${assigned[$id]:-}" ]; then
        echo "skip    $role: already granted"
        skipped=$((skipped + 1))
        return
    fi
    if [ "$dry_run" -eq 0 ]; then
        az rest --method post --url "$graph/servicePrincipals/$principal_id/appRoleAssignments" \
            --headers "Content-Type=application/json" --output none \
            --body "{\"principalId\": \"$principal_id\", \"resourceId\": \"$graph_sp\", \"appRoleId\": \"$id\"}"
    fi
    echo "${prefix}grant   $role"
    granted=$((granted + 1))
}

revoke() {
    local role="$1" id="${role_id[$1]:-}" assignment=""
    [ -z "$id" ] || assignment="${assigned[$id]:-}"
    if [ -z "$assignment" ]; then
        echo "skip    $role: not granted tenant-wide (Exchange RBAC for Applications scopes it)"
        skipped=$((skipped + 1))
        return
    fi
    if [ "$dry_run" -eq 0 ]; then
        az rest --method delete --output none \
            --url "$graph/servicePrincipals/$principal_id/appRoleAssignments/$assignment"
    fi
    echo "${prefix}remove  $role: tenant-wide grant (Exchange RBAC for Applications scopes it)"
    removed=$((removed + 1))
}

echo "Microsoft Graph application roles for service principal $principal_id:"
for role in "${DIRECTORY_ROLES[@]}"; do grant "$role"; done
for role in "${MAILBOX_ROLES[@]}"; do
    if [ "$mailbox_access" = "tenant" ]; then grant "$role"; else revoke "$role"; fi
done
echo "${prefix}summary: granted $granted, removed $removed, unchanged $skipped"
