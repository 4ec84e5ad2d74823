<#
.SYNOPSIS
Limits galsync's mailbox access to the target mailboxes with Exchange Online RBAC for Applications.

.DESCRIPTION
Microsoft Graph's Contacts.ReadWrite and MailboxSettings.Read application permissions reach every mailbox
in the tenant. RBAC for Applications grants the same rights ("Application Contacts.ReadWrite",
"Application MailboxSettings.Read") for the mailboxes of one management scope only. This script:

  1. registers galsync's service principal in Exchange Online (New-ServicePrincipal),
  2. creates or updates the management scope "galsync targets" (New-ManagementScope): members of a
     mail-enabled security group (-Group), or any recipient filter (-RecipientFilter),
  3. assigns both application roles to galsync within that scope (New-ManagementRoleAssignment),
  4. optionally tests one mailbox (Test-ServicePrincipalAuthorization).

Idempotent: what exists and matches is left alone; a scope or assignment that differs is updated, and an
assignment held by another identity (an earlier deployment's) is replaced.
Prints one line per step saying what it did.

Put in the scope every mailbox galsync writes to (targets) AND every mailbox it reads contacts from (a
shared mailbox used as a source). Entra permissions and RBAC for Applications add up: the scope only
limits galsync once the tenant-wide grants are gone, so run afterwards:
    infra/grant-graph-permissions.sh --mailbox-access scoped
Exchange applies changes to role assignments after 30 minutes to 2 hours; `galsync doctor` shows what
galsync can reach.

Needs the ExchangeOnlineManagement module (Install-Module ExchangeOnlineManagement) and a member of the
Organization Management role group; the script calls Connect-ExchangeOnline if no session is open.

.PARAMETER AppId
Client (application) id of galsync's identity: the managed identity's client id (azd output
AZURE_MANAGED_IDENTITY_CLIENT_ID) or the app registration's client id.

.PARAMETER ObjectId
Object id of that identity's service principal (azd output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID, or the
enterprise application's object id; NOT the app registration's object id).

.PARAMETER Group
Mail-enabled security group whose direct members are the mailboxes galsync may use (name, alias or email).

.PARAMETER RecipientFilter
OPATH filter instead of a group, e.g. "CustomAttribute10 -eq 'galsync'".

.PARAMETER ScopeName
Name of the management scope (default "galsync targets").

.PARAMETER TestMailbox
A mailbox to check: prints whether each role reaches it.

.EXAMPLE
./infra/scope-mailboxes.ps1 -AppId $env:AZURE_MANAGED_IDENTITY_CLIENT_ID -ObjectId $env:AZURE_MANAGED_IDENTITY_PRINCIPAL_ID -Group "galsync-phones" -TestMailbox driver01@contoso.com
#>
[CmdletBinding(DefaultParameterSetName = 'Group')]
param(
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9a-fA-F-]{36}$')][string] $AppId,
    [Parameter(Mandatory = $true)][ValidatePattern('^[0-9a-fA-F-]{36}$')][string] $ObjectId,
    [Parameter(Mandatory = $true, ParameterSetName = 'Group')][string] $Group,
    [Parameter(Mandatory = $true, ParameterSetName = 'Filter')][string] $RecipientFilter,
    [string] $ScopeName = 'galsync targets',
    [string] $DisplayName = 'galsync',
    [string] $TestMailbox
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# RBAC for Applications roles matching galsync's Graph mailbox permissions (see the README, section "Limit mailbox access to the target mailboxes").
$Roles = @('Application Contacts.ReadWrite', 'Application MailboxSettings.Read')

function Write-Step([string] $Action, [string] $What) {
    Write-Host ('{0,-8}{1}' -f $Action, $What)
}

if (-not (Get-Command Get-ManagementScope -ErrorAction SilentlyContinue)) {
    if (-not (Get-Module -ListAvailable ExchangeOnlineManagement)) {
        throw 'The ExchangeOnlineManagement module is missing: Install-Module ExchangeOnlineManagement'
    }
    Connect-ExchangeOnline -ShowBanner:$false
}

# 1. Exchange's pointer to the Entra service principal.
$sp = Get-ServicePrincipal -Identity $ObjectId -ErrorAction SilentlyContinue
if ($null -eq $sp) {
    $sp = New-ServicePrincipal -AppId $AppId -ObjectId $ObjectId -DisplayName $DisplayName
    Write-Step 'create' "service principal $DisplayName (app id $AppId)"
} elseif ($sp.AppId -ne $AppId) {
    throw "Exchange already knows object id $ObjectId with app id $($sp.AppId), not ${AppId}: check both ids"
} else {
    Write-Step 'skip' "service principal $($sp.DisplayName) exists"
}

# 2. The management scope: which mailboxes galsync may use.
if ($PSCmdlet.ParameterSetName -eq 'Group') {
    $groupObject = Get-Group -Identity $Group -ErrorAction SilentlyContinue
    if ($null -eq $groupObject) {
        throw "No group '$Group' in Exchange Online: give a mail-enabled security group"
    }
    # OPATH string values are in single quotes; a quote inside one is written twice (a DN can hold O'Brien).
    $dn = $groupObject.DistinguishedName.Replace("'", "''")
    $filter = "MemberOfGroup -eq '$dn'"
} else {
    $filter = $RecipientFilter
}
$scope = Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue
if ($null -eq $scope) {
    New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter | Out-Null
    Write-Step 'create' "management scope '$ScopeName': $filter"
} elseif ($scope.RecipientFilter -ne $filter) {
    Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $filter
    Write-Step 'update' "management scope '$ScopeName': $filter (was: $($scope.RecipientFilter))"
} else {
    Write-Step 'skip' "management scope '$ScopeName' has this filter"
}

# 3. One role assignment per application role, limited to the scope. An assignment of that name can belong
#    to an earlier identity (`azd down` and `azd up` create a new one): it is replaced, or the new identity
#    would get no role and every mailbox would answer 403.
# What Exchange may show as the assignee of an assignment to this service principal.
$assigneeNames = @(
    foreach ($property in 'Identity', 'Name', 'ServiceId', 'ObjectId') {
        $found = $sp.PSObject.Properties[$property]
        if ($null -ne $found -and $found.Value) { "$($found.Value)" }
    }
) + $ObjectId
foreach ($role in $Roles) {
    $name = "$DisplayName - $role"
    $assignment = Get-ManagementRoleAssignment -Identity $name -ErrorAction SilentlyContinue
    if ($null -ne $assignment -and $assigneeNames -notcontains "$($assignment.RoleAssigneeName)") {
        Remove-ManagementRoleAssignment -Identity $name -Confirm:$false
        Write-Step 'remove' "$role assigned to another identity ($($assignment.RoleAssigneeName))"
        $assignment = $null
    }
    if ($null -eq $assignment) {
        New-ManagementRoleAssignment -Name $name -App $ObjectId -Role $role -CustomResourceScope $ScopeName | Out-Null
        Write-Step 'assign' "$role within '$ScopeName'"
    } elseif ($assignment.CustomResourceScope -ne $ScopeName) {
        Set-ManagementRoleAssignment -Identity $name -CustomResourceScope $ScopeName
        Write-Step 'update' "$role now within '$ScopeName' (was: $($assignment.CustomResourceScope))"
    } else {
        Write-Step 'skip' "$role already assigned within '$ScopeName'"
    }
}

# 4. Optional check of one mailbox.
if ($TestMailbox) {
    foreach ($result in Test-ServicePrincipalAuthorization -Identity $ObjectId -Resource $TestMailbox) {
        Write-Step 'test' "$($result.RoleName) on ${TestMailbox}: in scope = $($result.InScope)"
    }
}

Write-Host ''
Write-Host 'Next: remove the tenant-wide Contacts.ReadWrite and MailboxSettings.Read grants so that the scope applies:'
Write-Host '    infra/grant-graph-permissions.sh --mailbox-access scoped'
Write-Host 'Exchange applies role assignment changes within 30 minutes to 2 hours; then run: galsync doctor'
