<#
.SYNOPSIS
azd prepackage hook (Windows): checks the profiles file before azd builds the package.

.DESCRIPTION
The PowerShell twin of infra/hooks/prepackage.sh. Without a valid profiles file the deployment would
succeed and every trigger would fail (the webhook answers 503), so a problem stops `azd deploy` / `azd up`
here, with every problem in the file listed. azd runs hooks in the project directory; GALSYNC_CONFIG_PATH
(an azd variable, default galsync.toml) is relative to it, as it is to the app root in Azure. Needs galsync
installed: on PATH, or in .venv (see the README, "Prerequisites").
#>
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$config = if ($env:GALSYNC_CONFIG_PATH) { $env:GALSYNC_CONFIG_PATH } else { 'galsync.toml' }
if ([System.IO.Path]::IsPathRooted($config)) {
    Write-Error "galsync: GALSYNC_CONFIG_PATH is $config; it must be relative to the project folder, which is what ships as the app"
    exit 1
}
if (-not (Test-Path -LiteralPath $config -PathType Leaf)) {
    Write-Error "galsync: no profiles file $config in $(Get-Location): copy galsync.example.toml to $config and edit it (docs/config.md)"
    exit 1
}

$galsync = Get-Command galsync -ErrorAction SilentlyContinue
if ($null -ne $galsync) {
    $galsync = $galsync.Source
} elseif (Test-Path -LiteralPath '.venv\Scripts\galsync.exe') {
    $galsync = '.venv\Scripts\galsync.exe'
} else {
    Write-Error "galsync: the galsync command is needed to check $config before deploying: py -m venv .venv; .venv\Scripts\pip install -e ."
    exit 1
}

& $galsync config validate $config
if ($LASTEXITCODE -ne 0) {
    Write-Error "galsync: $config has the problems above; fix them, then run azd deploy again"
    exit 1
}
