"""Ready-made tenants: `load(tenant, "logistics")` and `load(tenant, "synthetic", users=N, targets=M)`.

logistics: "Northwind Logistics", the company of the demo (docs/demo.txt), mail domain northwind.example. 100
drivers in four depots (25 each, department Transport, job title Driver, a mobile phone, their depot's address),
20 office staff in several departments with managers (some without a mobile), one disabled user, one guest, one
unlicensed user without a mailbox, five supplier org contacts, groups "Drivers" (with the nested group "Drivers
North") and "All Staff" (office staff plus the "Drivers" group), and four shared mailboxes "Trucks
North/South/East/West", each the address book of the 25 driver phones of its depot. Some names have accents,
apostrophes, hyphens or non-Latin script, and some users have photos. Everything is drawn from
`random.Random(seed)`, ids included, so a seed gives the same tenant every time.

synthetic: N licensed users with mailboxes and a group "Targets" holding M of them (the target mailboxes), for
benchmarks; no per-user photo or other costly work, so 100,000 users load in seconds.

Phone numbers come from Ofcom's ranges reserved for fiction (+44 7700 900xxx, +44 20 7946 0xxx).
"""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .tenant import Tenant

COMPANY = "Northwind Logistics"
DOMAIN = "northwind.example"  # the company's mail domain: galsync.example.toml names trucks.north@northwind.example
COUNTRY = "United Kingdom"

DEPOTS: dict[str, dict[str, str]] = {
    "North": {"streetAddress": "12 Ring Road, Stourton", "city": "Leeds", "state": "West Yorkshire",
              "postalCode": "LS10 1RT"},
    "South": {"streetAddress": "4 Dock Gate Road", "city": "Southampton", "state": "Hampshire",
              "postalCode": "SO15 1AG"},
    "East": {"streetAddress": "88 Hellesdon Park Road", "city": "Norwich", "state": "Norfolk",
             "postalCode": "NR6 5DR"},
    "West": {"streetAddress": "27 Avonmouth Way", "city": "Bristol", "state": "Bristol",
             "postalCode": "BS11 9YA"},
}  # fmt: skip
HEAD_OFFICE = {"streetAddress": "Northwind House, 1 Canal Wharf", "city": "Leeds", "state": "West Yorkshire",
               "postalCode": "LS11 5PS"}  # fmt: skip

FIRST_NAMES: tuple[str, ...] = (
    "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas", "Oscar", "William", "James",
    "Leo", "Alfie", "Henry", "Joshua", "Freddie", "Amelia", "Olivia", "Isla", "Emily", "Poppy", "Ava",
    "Isabella", "Jessica", "Lily", "Sophie", "Grace", "Sophia", "Mia", "Evie", "Ruby", "Ella", "Scarlett",
    "Chloe", "Daniel", "Ryan", "Megan", "Lauren", "Connor",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
    "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel",
    "Khan", "Lewis", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Clark", "Harrison", "Scott", "Young",
    "Morris", "Ward", "Cooper", "King", "Baker", "Harris",
)  # fmt: skip

# (givenName, surname, displayName, mailNickname or None): accents, apostrophes, hyphens, non-Latin scripts.
ODD_NAMES: tuple[tuple[str, str, str, str | None], ...] = (
    ("Siobhán", "O'Brien", "Siobhán O'Brien", None),
    ("José", "Núñez-García", "José Núñez-García", None),
    ("Zoë", "Müller", "Zoë Müller", None),
    ("Дмитрий", "Соколов", "Дмитрий Соколов", "dmitriy.sokolov"),
    ("伟", "李", "李伟", "wei.li"),
    ("Anne-Marie", "D'Souza", "Anne-Marie D'Souza", None),
    ("Björn", "Ångström", "Björn Ångström", None),
    ("Ελένη", "Παπαδοπούλου", "Ελένη Παπαδοπούλου", "eleni.papadopoulou"),
)

# (title, department, role key, reports to, has a mobile)
OFFICE_STAFF: tuple[tuple[str, str, str, str | None, bool], ...] = (
    ("Managing Director", "Management", "ceo", None, True),
    ("Head of Operations", "Operations", "ops", "ceo", True),
    ("Finance Manager", "Finance", "fin", "ceo", True),
    ("HR Manager", "Human Resources", "hr", "ceo", False),
    ("IT Manager", "IT", "it", "ceo", True),
    ("Sales Manager", "Sales", "sales", "ceo", True),
    ("Depot Manager", "Operations", "depot:North", "ops", True),
    ("Depot Manager", "Operations", "depot:South", "ops", True),
    ("Depot Manager", "Operations", "depot:East", "ops", True),
    ("Depot Manager", "Operations", "depot:West", "ops", True),
    ("Dispatcher", "Operations", "dispatch1", "ops", True),
    ("Dispatcher", "Operations", "dispatch2", "ops", False),
    ("Accountant", "Finance", "acc1", "fin", False),
    ("Accounts Assistant", "Finance", "acc2", "fin", False),
    ("HR Assistant", "Human Resources", "hr1", "hr", False),
    ("IT Support Technician", "IT", "it1", "it", True),
    ("Account Manager", "Sales", "sales1", "sales", True),
    ("Account Manager", "Sales", "sales2", "sales", True),
    ("Account Manager", "Sales", "sales3", "sales", False),
    ("Receptionist", "Administration", "reception", "ceo", False),
)

SUPPLIERS: tuple[dict[str, Any], ...] = (
    {"displayName": "Fuel Direct – Accounts", "companyName": "Fuel Direct Ltd", "givenName": None,
     "surname": None, "mail": "accounts@fueldirect.example", "jobTitle": None, "department": "Accounts"},
    {"displayName": "Tyre Rescue 24/7", "companyName": "Tyre Rescue UK", "givenName": None, "surname": None,
     "mail": "callout@tyrerescue.example", "jobTitle": None, "department": None},
    {"displayName": "Żaneta Kowalska", "companyName": "Baltic Customs Brokers", "givenName": "Żaneta",
     "surname": "Kowalska", "mail": "z.kowalska@balticcustoms.example", "jobTitle": "Customs Broker",
     "department": None},
    {"displayName": "Liam O'Connor", "companyName": "Shield Fleet Insurance", "givenName": "Liam",
     "surname": "O'Connor", "mail": "liam.oconnor@shieldfleet.example", "jobTitle": "Claims Handler",
     "department": "Claims"},
    {"displayName": "Van & Truck Workshop", "companyName": "Van & Truck Workshop Ltd", "givenName": None,
     "surname": None, "mail": "bookings@vantruck.example", "jobTitle": None, "department": "Bookings"},
)  # fmt: skip

PHOTO_EDGES = (240, 360, 504, 648)


def load(tenant: Tenant, name: str, seed: int = 0, **params: Any) -> dict[str, Any]:
    """Fill `tenant` with a named scenario and return the ids tests and the demo refer to."""
    loaders = {"logistics": _logistics, "synthetic": _synthetic}
    if name not in loaders:
        raise ValueError(f"Unknown scenario {name!r}; known scenarios: {', '.join(sorted(loaders))}.")
    if name == "logistics" and params:
        raise ValueError(f"Scenario 'logistics' takes no parameters (got {', '.join(sorted(params))}).")
    unknown = set(params) - {"users", "targets"}
    if unknown:
        raise ValueError(
            f"Scenario 'synthetic' takes users= and targets= only (got {', '.join(sorted(unknown))})."
        )
    return loaders[name](tenant, random.Random(seed), **params)


def make_jpeg(width: int, height: int, shade: int = 128, comment: str = "") -> bytes:
    """A valid baseline greyscale JPEG of one flat shade (0-255), built byte by byte (no imaging library).

    Every 8x8 block has only a DC coefficient; the first block sets the level and the rest repeat it
    (difference 0), so the scan is tiny. Standard DC Huffman table; a two-code AC table holding end-of-block.
    """
    if not (1 <= width <= 4096 and 1 <= height <= 4096):
        raise ValueError(f"JPEG size {width}x{height} is out of range (1-4096).")
    if not 0 <= shade <= 255:
        raise ValueError(f"shade {shade} is out of range (0-255).")
    dc_counts = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    dc_codes = _canonical_codes(dc_counts, list(range(12)))
    ac_counts = [0, 2] + [0] * 14
    ac_codes = _canonical_codes(ac_counts, [0x00, 0x01])  # 0x00 = end of block
    eob = ac_codes[0x00]

    level = 8 * (shade - 128)  # the DC coefficient of a flat block with quantizer 1
    category = abs(level).bit_length()
    bits = dc_codes[category]
    if category:
        value = level if level > 0 else level + (1 << category) - 1
        bits += format(value, f"0{category}b")
    bits += eob
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits += (dc_codes[0] + eob) * (blocks - 1)
    bits += "1" * (-len(bits) % 8)
    scan = bytearray()
    for i in range(0, len(bits), 8):
        byte = int(bits[i : i + 8], 2)
        scan.append(byte)
        if byte == 0xFF:
            scan.append(0x00)  # byte stuffing

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    out = bytearray(b"\xff\xd8")
    out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if comment:
        out += segment(0xFE, comment.encode("utf-8")[:60000])
    out += segment(0xDB, b"\x00" + b"\x01" * 64)
    out += segment(0xC0, b"\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x01\x01\x11\x00")
    out += segment(0xC4, b"\x00" + bytes(dc_counts) + bytes(range(12)))
    out += segment(0xC4, b"\x10" + bytes(ac_counts) + b"\x00\x01")
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    out += scan
    out += b"\xff\xd9"
    return bytes(out)


def _canonical_codes(counts: list[int], symbols: list[int]) -> dict[int, str]:
    """Huffman codes as JPEG assigns them: by length, then in symbol order (ITU T.81 Annex C)."""
    codes: dict[int, str] = {}
    code, k = 0, 0
    for length, count in enumerate(counts, start=1):
        for _ in range(count):
            codes[symbols[k]] = format(code, f"0{length}b")
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Phones:
    """Unique fictional numbers drawn from the seeded rng."""

    def __init__(self, rng: random.Random) -> None:
        self._mobiles = iter(rng.sample(range(1000), 1000))
        self._landlines = iter(rng.sample(range(1000), 1000))

    def mobile(self) -> str:
        return f"+44 7700 900{next(self._mobiles):03d}"

    def landline(self) -> str:
        return f"+44 20 7946 0{next(self._landlines):03d}"


def _logistics(tenant: Tenant, rng: random.Random) -> dict[str, Any]:
    directory = tenant.directory
    if not directory.users():
        tenant.domain = DOMAIN  # an empty tenant becomes Northwind's; a loaded one keeps its domain
    phones = _Phones(rng)
    common = {"companyName": COMPANY, "country": COUNTRY, "usageLocation": "GB", "preferredLanguage": "en-GB"}
    names = _name_source(rng)
    employee_no = iter(range(1001, 2000))

    def person(**props: Any) -> dict[str, Any]:
        given, surname, display, nickname = next(names)
        values = {**common, "givenName": given, "surname": surname, "displayName": display}
        if nickname:
            values["mailNickname"] = nickname
        values["employeeId"] = f"NW{next(employee_no)}"
        values.update(props)
        user = directory.add_user(id=_guid(rng), **values)
        if rng.random() < 0.3:
            edge = rng.choice(PHOTO_EDGES)
            jpeg = make_jpeg(edge, edge, shade=rng.randrange(40, 220), comment=f"photo of {user['id']}")
            directory.set_photo(user["id"], jpeg)
        return user

    # Office staff first, so that managers exist.
    office: dict[str, str] = {}
    for title, department, key, reports_to, has_mobile in OFFICE_STAFF:
        depot = key.split(":")[1] if key.startswith("depot:") else None
        address = DEPOTS[depot] if depot else HEAD_OFFICE
        user = person(
            jobTitle=title,
            department=department,
            officeLocation=f"Depot {depot}" if depot else "Head Office",
            businessPhones=[phones.landline()],
            **({"mobilePhone": phones.mobile()} if has_mobile else {}),
            manager_id=office[reports_to] if reports_to else None,
            **address,
        )
        office[key] = user["id"]

    drivers_by_depot: dict[str, list[str]] = {d: [] for d in DEPOTS}
    for i in range(100):
        depot = list(DEPOTS)[i // 25]
        user = person(
            jobTitle="Driver",
            department="Transport",
            officeLocation=f"Depot {depot}",
            mobilePhone=phones.mobile(),
            manager_id=office[f"depot:{depot}"],
            **DEPOTS[depot],
        )
        drivers_by_depot[depot].append(user["id"])

    disabled = person(
        jobTitle="Warehouse Operative",
        department="Transport",
        officeLocation="Depot South",
        accountEnabled=False,
        mobilePhone=phones.mobile(),
        **DEPOTS["South"],
    )
    guest = directory.add_user(
        id=_guid(rng),
        displayName="Priya Raman (Fleet Consulting)",
        givenName="Priya",
        surname="Raman",
        userPrincipalName=f"priya.raman_fleetconsult.example#EXT#@{tenant.domain}",
        mail="priya.raman@fleetconsult.example",
        userType="Guest",
        creationType="Invitation",
        externalUserState="Accepted",
        companyName="Fleet Consulting",
        assignedLicenses=[],
    )
    unlicensed = person(
        jobTitle="Seasonal Loader",
        department="Transport",
        officeLocation="Depot East",
        assignedLicenses=[],
        mail=None,
        **DEPOTS["East"],
    )

    shared: dict[str, dict[str, Any]] = {}
    for depot, driver_ids in drivers_by_depot.items():
        mailbox = directory.add_user(
            id=_guid(rng),
            shared_mailbox=True,
            displayName=f"Trucks {depot}",
            mailNickname=f"trucks.{depot.lower()}",
            officeLocation=f"Depot {depot}",
            companyName=COMPANY,
        )
        shared[mailbox["displayName"]] = {
            "id": mailbox["id"],
            "mail": mailbox["mail"],
            "depot": depot,
            "phones": list(driver_ids),  # the 25 driver phones whose address book this mailbox is
        }

    contact_ids = []
    for supplier in SUPPLIERS:
        values = {k: v for k, v in supplier.items() if v is not None}
        values["mailNickname"] = values["mail"].split("@")[0]
        values["phones"] = [{"type": "business", "number": phones.landline()}]
        values["addresses"] = [
            {"city": "London", "countryOrRegion": COUNTRY, "officeLocation": None, "postalCode": "EC1A 1BB",
             "state": None, "street": "1 Supplier Street"}
        ]  # fmt: skip
        contact_ids.append(directory.add_org_contact(id=_guid(rng), **values)["id"])

    drivers_north = directory.add_group("Drivers North", drivers_by_depot["North"], id=_guid(rng))
    others = [d for depot in ("South", "East", "West") for d in drivers_by_depot[depot]]
    drivers = directory.add_group(
        "Drivers", [drivers_north["id"], *others], id=_guid(rng), description="Every driver of every depot"
    )
    all_staff = directory.add_group(
        "All Staff",
        [*office.values(), drivers["id"]],
        id=_guid(rng),
        description="Everyone at Northwind Logistics",
    )
    return {
        "company": COMPANY,
        "shared_mailboxes": shared,
        "drivers": [d for ids in drivers_by_depot.values() for d in ids],
        "drivers_by_depot": drivers_by_depot,
        "office_staff": list(office.values()),
        "managers": {k.split(":")[1]: v for k, v in office.items() if k.startswith("depot:")},
        "ceo_id": office["ceo"],
        "disabled_user_id": disabled["id"],
        "guest_user_id": guest["id"],
        "unlicensed_user_id": unlicensed["id"],
        "org_contact_ids": contact_ids,
        "drivers_group_id": drivers["id"],
        "drivers_north_group_id": drivers_north["id"],
        "all_staff_group_id": all_staff["id"],
    }


def _name_source(rng: random.Random) -> Any:
    """Names for the logistics people: mostly common ones, with the odd ones spread through the list."""
    odd_at = set(rng.sample(range(2, 110), len(ODD_NAMES)))
    odd = iter(ODD_NAMES)
    i = 0
    while True:
        if i in odd_at:
            yield next(odd)
        else:
            given, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            yield given, surname, f"{given} {surname}", None
        i += 1


def _synthetic(tenant: Tenant, rng: random.Random, users: int = 1000, targets: int = 10) -> dict[str, Any]:
    if not isinstance(users, int) or users < 1:
        raise ValueError(f"synthetic: users must be a positive integer (got {users!r}).")
    if not isinstance(targets, int) or not 0 <= targets <= users:
        raise ValueError(f"synthetic: targets must be between 0 and users={users} (got {targets!r}).")
    directory = tenant.directory
    departments = ("Transport", "Operations", "Sales", "Finance", "IT", "Warehouse")
    titles = ("Driver", "Coordinator", "Account Manager", "Analyst", "Engineer", "Operative")
    user_ids = []
    for i in range(users):
        upn = f"user{i:06d}@{tenant.domain}"
        user = directory.add_user(
            id=_guid(rng),
            displayName=f"User {i:06d}",
            givenName="User",
            surname=f"{i:06d}",
            userPrincipalName=upn,
            mailNickname=f"user{i:06d}",
            mail=upn,
            mobilePhone=f"+44 7700 {i % 1000000:06d}",
            businessPhones=[],
            jobTitle=titles[i % len(titles)],
            department=departments[i % len(departments)],
            companyName="Synthetic Ltd",
        )
        user_ids.append(user["id"])
    target_ids = [user_ids[i] for i in sorted(rng.sample(range(users), targets))]
    group = directory.add_group("Targets", target_ids, id=_guid(rng), description="Target mailboxes")
    return {"user_ids": user_ids, "targets_group_id": group["id"], "target_ids": target_ids}
