<#
.SYNOPSIS
azd postdeploy hook (Windows): stores the function key Graph's notification URLs carry in Key Vault.

.DESCRIPTION
The PowerShell twin of infra/hooks/postdeploy.sh; both do the same steps with the same names. Graph calls
galsync's notification URLs with ?code=<function key>; the app learns that key from GALSYNC_WEBHOOK_KEY, a
Key Vault reference to the secret galsync-webhook-key. This hook makes sure the host key "galsync-webhook"
exists (the platform generates its value) and that the secret holds the same value, restarting the app only
when the secret changed. Idempotent; prints what it did, never the key. Needs the Azure CLI signed in as the
deployer (Key Vault Secrets Officer on the vault, granted by infra/app/rbac.bicep). Run it again with
`azd hooks run postdeploy`.

The Azure CLI's answers are read as JSON (ConvertFrom-Json) instead of with --query expressions, whose
quotes Windows PowerShell 5.1 and az.cmd would mangle; the key goes to az through a file, never on its
command line.
#>
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

function Get-Required([string] $Name) {
    $value = [Environment]::GetEnvironmentVariable($Name)
    if (-not $value) { throw "$Name not set: run through azd, or set the azd outputs first" }
    return $value
}

# Runs az; returns its standard output, or $null when it failed (the caller says what that means). Native
# stderr must not become a terminating error (Windows PowerShell does that under 'Stop').
function Invoke-Az([string[]] $Arguments) {
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $out = & az @Arguments 2>$null
        if ($LASTEXITCODE -ne 0) { return $null }
        return ($out -join "`n")
    } finally {
        $ErrorActionPreference = $previous
    }
}

$app = Get-Required 'AZURE_FUNCTION_APP_NAME'
$group = Get-Required 'AZURE_RESOURCE_GROUP'
$vault = Get-Required 'AZURE_KEY_VAULT_NAME'
$keyName = 'galsync-webhook'
$secretName = 'galsync-webhook-key'

$listed = Invoke-Az @('functionapp', 'keys', 'list', '--resource-group', $group, '--name', $app, '--output', 'json')
if ($null -eq $listed) { throw "galsync: could not list the host keys of $app" }
$functionKeys = ($listed | ConvertFrom-Json).functionKeys
$key = if ($null -ne $functionKeys -and $functionKeys.PSObject.Properties[$keyName]) { $functionKeys.$keyName } else { '' }
if (-not $key) {
    $created = Invoke-Az @('functionapp', 'keys', 'set', '--resource-group', $group, '--name', $app,
        '--key-type', 'functionKeys', '--key-name', $keyName, '--output', 'json')
    if ($null -ne $created) { $key = ($created | ConvertFrom-Json).value }
    Write-Host "galsync: created host key $keyName on $app"
} else {
    Write-Host "galsync: host key $keyName exists on $app"
}
if (-not $key) {
    Write-Error "galsync: could not read host key $keyName on $app"
    exit 1
}

$shown = Invoke-Az @('keyvault', 'secret', 'show', '--vault-name', $vault, '--name', $secretName, '--output', 'json')
$stored = if ($null -ne $shown) { ($shown | ConvertFrom-Json).value } else { $null }
if ($stored -ceq $key) {
    Write-Host "galsync: Key Vault $vault secret $secretName is up to date"
    exit 0
}

$work = Join-Path ([System.IO.Path]::GetTempPath()) ("galsync-" + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $work | Out-Null
try {
    $file = Join-Path $work 'key'
    [System.IO.File]::WriteAllText($file, $key, (New-Object System.Text.UTF8Encoding($false)))
    $written = Invoke-Az @('keyvault', 'secret', 'set', '--vault-name', $vault, '--name', $secretName, '--file', $file,
        '--encoding', 'utf-8', '--content-type', 'text/plain', '--output', 'none')
    if ($null -eq $written) {
        Write-Error ("galsync: could not write $secretName to Key Vault $vault. A new role assignment can take a few " +
            "minutes to apply: run 'azd hooks run postdeploy' again.")
        exit 1
    }
} finally {
    Remove-Item -LiteralPath $work -Recurse -Force -ErrorAction SilentlyContinue
}
Write-Host "galsync: stored host key $keyName in Key Vault $vault as $secretName"

# A Key Vault reference is resolved again when the app restarts.
if ($null -eq (Invoke-Az @('functionapp', 'restart', '--resource-group', $group, '--name', $app, '--output', 'none'))) {
    Write-Error "galsync: could not restart $app; restart it so that GALSYNC_WEBHOOK_KEY resolves to the new secret"
    exit 1
}
Write-Host "galsync: restarted $app so that GALSYNC_WEBHOOK_KEY resolves to the new secret"
