"""Deterministic, realistic fake data for the sandbox servers, tests and benchmarks.

Why deterministic: a failing scenario must be replayable from ``(n, seed)`` alone. Every function
builds its own ``random.Random`` from the function name and the seed (never the global RNG), so the
same arguments give identical output in any process, and two generators called with the same seed
still produce unrelated data.

Records are plain dicts in each API's own field names, ready to POST (no server-assigned ids):

- Facturama: PascalCase JSON bodies (facturama-api.md §4.3, §5.2, §9);
- FacturaDirecta: nested dicts with the XML element names, values as strings (§5.3, §8, §9);
- Clientify: JSON bodies (clientify-api.md §5, §6).

Tax ids are built with their check digits and verified with python-stdnum; a generated id that does
not validate is a bug here and raises. Bad-input fractions are honoured exactly
(``round(n * fraction)`` records each), chosen at seeded random positions:

- ``no_rfc``: empty tax id ``""``;
- ``invalid_rfc``: a wrong check character, or an impossible date / malformed number;
- ``generic_rfc``: an id that identifies no one (``GENERIC_TAX_IDS``);
- ``duplicate_rfc``: a valid id copied from another record of the same kind;
- ``unicode_names``: accents, ñ, emoji, decomposed (NFD) accents;
- ``long_names``: names of about 300 characters.

Otherwise names are ASCII and valid tax ids are unique within one call.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stdnum.es import cif as es_cif
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.es import nif as es_nif
from stdnum.mx import rfc as mx_rfc

from clientify_sync.api.facturama import GENERIC_RFCS
from clientify_sync.engine.taxid import PLACEHOLDER_NIFS

Record = dict[str, Any]

# The product's definitions, in a fixed order: the generator picks from them with a seeded random.
MX_GENERIC_RFCS = tuple(sorted(GENERIC_RFCS))
# Spanish placeholders with valid check letters: they pass validation yet identify no one.
ES_GENERIC_NIFS = tuple(sorted(PLACEHOLDER_NIFS))
GENERIC_TAX_IDS = frozenset(MX_GENERIC_RFCS + ES_GENERIC_NIFS)

# --------------------------------------------------------------------------------------------------
# Word pools (ASCII names; addresses keep their real accents)
# --------------------------------------------------------------------------------------------------

# fmt: off
MX_GIVEN = (
    "JUAN", "JOSE", "LUIS", "CARLOS", "JORGE", "MIGUEL", "ALEJANDRO", "FERNANDO", "RICARDO", "EDUARDO",
    "FRANCISCO", "ANTONIO", "JAVIER", "ROBERTO", "DANIEL", "SERGIO", "ARTURO", "MARIO", "RAUL", "HECTOR",
    "MARIA", "GUADALUPE", "ANA", "LAURA", "PATRICIA", "SOFIA", "VERONICA", "GABRIELA", "ADRIANA",
    "ALEJANDRA", "CLAUDIA", "LETICIA", "MONICA", "ROSA", "ELENA", "SANDRA", "DIANA", "CAROLINA", "FERNANDA",
    "VALERIA", "XIMENA", "REGINA", "ANDREA", "PAOLA", "ISABEL", "TERESA", "BEATRIZ",
)
MX_SURNAMES = (
    "HERNANDEZ", "GARCIA", "MARTINEZ", "LOPEZ", "GONZALEZ", "PEREZ", "RODRIGUEZ", "SANCHEZ", "RAMIREZ",
    "CRUZ", "FLORES", "GOMEZ", "MORALES", "VAZQUEZ", "REYES", "JIMENEZ", "TORRES", "DIAZ", "GUTIERREZ",
    "RUIZ", "MENDOZA", "AGUILAR", "ORTIZ", "MORENO", "CASTILLO", "ROMERO", "ALVAREZ", "MENDEZ", "CHAVEZ",
    "RIVERA", "JUAREZ", "RAMOS", "DOMINGUEZ", "HERRERA", "MEDINA", "CASTRO", "VARGAS", "GUZMAN",
    "VELAZQUEZ", "SALAZAR", "ROJAS", "CONTRERAS", "LUNA", "ORTEGA", "ESTRADA", "DELGADO", "SOTO",
    "CERVANTES", "BECERRA", "ZAMORA", "IBARRA", "ESPINOZA", "SANDOVAL", "CARRILLO", "TREVINO", "OCHOA",
)
MX_COMPANY_HEAD = (
    "GRUPO", "COMERCIALIZADORA", "SERVICIOS", "DISTRIBUIDORA", "CONSTRUCTORA", "TRANSPORTES", "CORPORATIVO",
    "INDUSTRIAS", "ALIMENTOS", "TECNOLOGIA", "CONSULTORES", "INMOBILIARIA", "LABORATORIOS", "IMPORTADORA",
    "FERRETERA", "AGROPECUARIA", "LOGISTICA", "DESARROLLOS", "MAQUINADOS", "TEXTILES",
)
MX_COMPANY_CORE = (
    "AZTECA", "OLMECA", "MAYA", "ANAHUAC", "SIERRA", "PACIFICO", "GOLFO", "BAJIO", "NORTE", "SURESTE",
    "ALTIPLANO", "TOLTECA", "HUASTECA", "MIXTECA", "ZAPOTECA", "QUETZAL", "JAGUAR", "NOPAL", "MAGUEY",
    "CENTINELA", "HORIZONTE", "VANGUARDIA", "ATLAS", "ORION", "PRISMA", "NEXUS", "ALFA", "DELTA",
)
MX_COMPANY_TAIL = (
    "DEL NORTE", "DEL BAJIO", "INTEGRALES", "MEXICANA", "GLOBAL", "INDUSTRIAL", "DE OCCIDENTE",
    "DEL CENTRO", "EMPRESARIALES", "Y ASOCIADOS", "PROFESIONALES", "DE MEXICO", "", "",
)
MX_COMPANY_SUFFIX = ("SA DE CV",) * 6 + ("S DE RL DE CV", "SAPI DE CV", "SC", "AC")
# (state, ((municipality, locality), ...), first 2-digit zip prefix, last prefix)
MX_STATES: tuple[tuple[str, tuple[tuple[str, str], ...], int, int], ...] = (
    ("Aguascalientes", (("Aguascalientes", "Aguascalientes"),), 20, 20),
    ("Baja California", (("Tijuana", "Tijuana"), ("Mexicali", "Mexicali")), 21, 22),
    ("Baja California Sur", (("La Paz", "La Paz"), ("Los Cabos", "Cabo San Lucas")), 23, 23),
    ("Campeche", (("Campeche", "San Francisco de Campeche"),), 24, 24),
    ("Coahuila", (("Saltillo", "Saltillo"), ("Torreón", "Torreón")), 25, 27),
    ("Colima", (("Colima", "Colima"), ("Manzanillo", "Manzanillo")), 28, 28),
    ("Chiapas", (("Tuxtla Gutiérrez", "Tuxtla Gutiérrez"),), 29, 30),
    ("Chihuahua", (("Chihuahua", "Chihuahua"), ("Juárez", "Ciudad Juárez")), 31, 33),
    (
        "Ciudad de México",
        (
            ("Benito Juárez", "Ciudad de México"),
            ("Coyoacán", "Ciudad de México"),
            ("Cuauhtémoc", "Ciudad de México"),
            ("Miguel Hidalgo", "Ciudad de México"),
        ),
        1,
        16,
    ),
    ("Durango", (("Durango", "Victoria de Durango"),), 34, 35),
    ("Guanajuato", (("León", "León de los Aldama"), ("Irapuato", "Irapuato"), ("Celaya", "Celaya")), 36, 38),
    ("Guerrero", (("Acapulco de Juárez", "Acapulco"), ("Chilpancingo de los Bravo", "Chilpancingo")), 39, 41),
    ("Hidalgo", (("Pachuca de Soto", "Pachuca"),), 42, 43),
    (
        "Jalisco",
        (("Guadalajara", "Guadalajara"), ("Zapopan", "Zapopan"), ("Tlaquepaque", "Tlaquepaque")),
        44,
        49,
    ),
    (
        "México",
        (
            ("Toluca", "Toluca de Lerdo"),
            ("Naucalpan de Juárez", "Naucalpan"),
            ("Ecatepec de Morelos", "Ecatepec"),
        ),
        50,
        57,
    ),
    ("Michoacán", (("Morelia", "Morelia"), ("Uruapan", "Uruapan")), 58, 61),
    ("Morelos", (("Cuernavaca", "Cuernavaca"),), 62, 62),
    ("Nayarit", (("Tepic", "Tepic"),), 63, 63),
    (
        "Nuevo León",
        (
            ("Monterrey", "Monterrey"),
            ("San Pedro Garza García", "San Pedro Garza García"),
            ("Guadalupe", "Guadalupe"),
        ),
        64,
        67,
    ),
    ("Oaxaca", (("Oaxaca de Juárez", "Oaxaca"),), 68, 71),
    ("Puebla", (("Puebla", "Heroica Puebla de Zaragoza"), ("Tehuacán", "Tehuacán")), 72, 75),
    ("Querétaro", (("Querétaro", "Santiago de Querétaro"),), 76, 76),
    ("Quintana Roo", (("Benito Juárez", "Cancún"), ("Othón P. Blanco", "Chetumal")), 77, 77),
    ("San Luis Potosí", (("San Luis Potosí", "San Luis Potosí"),), 78, 79),
    ("Sinaloa", (("Culiacán", "Culiacán Rosales"), ("Mazatlán", "Mazatlán")), 80, 82),
    ("Sonora", (("Hermosillo", "Hermosillo"), ("Cajeme", "Ciudad Obregón")), 83, 85),
    ("Tabasco", (("Centro", "Villahermosa"),), 86, 86),
    ("Tamaulipas", (("Reynosa", "Reynosa"), ("Tampico", "Tampico")), 87, 89),
    ("Tlaxcala", (("Tlaxcala", "Tlaxcala de Xicohténcatl"),), 90, 90),
    ("Veracruz", (("Veracruz", "Veracruz"), ("Xalapa", "Xalapa-Enríquez")), 91, 96),
    ("Yucatán", (("Mérida", "Mérida"),), 97, 97),
    ("Zacatecas", (("Zacatecas", "Zacatecas"),), 98, 99),
)
MX_STREETS = (
    "Av. Insurgentes Sur", "Av. Reforma", "Calle Morelos", "Av. Juárez", "Calle 5 de Mayo",
    "Blvd. Miguel Hidalgo", "Calzada de Tlalpan", "Calle Allende", "Av. Revolución", "Calle Zaragoza",
    "Av. Universidad", "Calle Guerrero", "Av. Vallarta", "Calle Matamoros", "Av. Constitución",
    "Calle Aldama", "Blvd. Adolfo López Mateos", "Calle Independencia", "Av. Chapultepec", "Calle Madero",
)
MX_NEIGHBORHOODS = (
    "Centro", "Del Valle", "Roma Norte", "Condesa", "Polanco", "Americana", "Chapultepec", "Obrera",
    "Industrial", "Jardines del Bosque", "Las Águilas", "San Ángel", "Santa Fe", "Lomas Verdes",
    "Providencia", "Moderna", "Residencial del Parque", "Hipódromo", "Narvarte", "Tlacoquemécatl",
)
MX_CFDI_USE_PERSON = ("G03", "G01", "D01", "S01", "CP01", "G03", "G03")
MX_CFDI_USE_COMPANY = ("G03", "G01", "I04", "I08", "G03", "CP01")
MX_REGIME_PERSON = ("605", "612", "626")
MX_REGIME_COMPANY = ("601", "603")

ES_GIVEN = (
    "Antonio", "Manuel", "Jose", "Francisco", "David", "Juan", "Javier", "Daniel", "Carlos", "Jesus",
    "Alejandro", "Miguel", "Rafael", "Pablo", "Sergio", "Fernando", "Jorge", "Alberto", "Luis", "Alvaro",
    "Maria", "Carmen", "Ana", "Isabel", "Laura", "Cristina", "Marta", "Lucia", "Paula", "Elena", "Sara",
    "Raquel", "Pilar", "Rosa", "Silvia", "Nuria", "Beatriz", "Julia", "Irene", "Montserrat",
)
ES_SURNAMES = (
    "Garcia", "Rodriguez", "Gonzalez", "Fernandez", "Lopez", "Martinez", "Sanchez", "Perez", "Gomez",
    "Martin", "Jimenez", "Ruiz", "Hernandez", "Diaz", "Moreno", "Alvarez", "Romero", "Alonso", "Gutierrez",
    "Navarro", "Torres", "Dominguez", "Vazquez", "Ramos", "Gil", "Ramirez", "Serrano", "Blanco", "Molina",
    "Castro", "Ortiz", "Rubio", "Marin", "Sanz", "Iglesias", "Medina", "Garrido", "Cortes", "Castillo",
    "Santos", "Lozano", "Guerrero", "Cano", "Prieto", "Mendez", "Calvo", "Vidal",
)
ES_COMPANY_HEAD = (
    "Construcciones", "Transportes", "Distribuciones", "Talleres", "Instalaciones", "Consultoria",
    "Reformas", "Suministros", "Servicios", "Comercial", "Inmobiliaria", "Electricidad", "Asesoria",
    "Grupo", "Industrias", "Gestion", "Soluciones", "Logistica", "Hosteleria", "Panaderia",
)
ES_COMPANY_CORE = (
    "Iberica", "Mediterraneo", "Cantabrico", "Levante", "Norte", "del Sur", "Atlantico", "Pirineo",
    "Moncayo", "Guadalquivir", "Duero", "Ebro", "Tajo", "Sil", "Montseny", "Sierra Nevada", "Teide",
    "Galaica", "Castellana", "Aragonesa", "Navarra", "Balear", "Canaria", "Manchega", "Riojana",
)
# CIF letter -> legal-form suffix (A SA, B SL, ... P local bodies).
ES_CIF_FORMS: tuple[tuple[str, str, int], ...] = (
    ("B", "SL", 55),
    ("A", "SA", 20),
    ("E", "CB", 4),
    ("F", "S. Coop.", 3),
    ("G", "Asociacion", 5),
    ("J", "SC", 4),
    ("U", "UTE", 2),
    ("V", "Fundacion", 2),
    ("H", "Comunidad de Propietarios", 2),
    ("N", "Ltd. Sucursal", 1),
    ("P", "Ayuntamiento", 1),
    ("Q", "Organismo", 1),
)
# (INE code, province, cities)
ES_PROVINCES: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "Álava", ("Vitoria-Gasteiz",)),
    (2, "Albacete", ("Albacete",)),
    (3, "Alicante", ("Alicante", "Elche")),
    (4, "Almería", ("Almería",)),
    (5, "Ávila", ("Ávila",)),
    (6, "Badajoz", ("Badajoz", "Mérida")),
    (7, "Illes Balears", ("Palma",)),
    (8, "Barcelona", ("Barcelona", "Vic", "Sabadell", "Terrassa")),
    (9, "Burgos", ("Burgos",)),
    (10, "Cáceres", ("Cáceres",)),
    (11, "Cádiz", ("Cádiz", "Jerez de la Frontera")),
    (12, "Castellón", ("Castelló de la Plana",)),
    (13, "Ciudad Real", ("Ciudad Real",)),
    (14, "Córdoba", ("Córdoba",)),
    (15, "A Coruña", ("A Coruña", "Santiago de Compostela")),
    (16, "Cuenca", ("Cuenca",)),
    (17, "Girona", ("Girona",)),
    (18, "Granada", ("Granada",)),
    (19, "Guadalajara", ("Guadalajara",)),
    (20, "Gipuzkoa", ("Donostia-San Sebastián",)),
    (21, "Huelva", ("Huelva",)),
    (22, "Huesca", ("Huesca",)),
    (23, "Jaén", ("Jaén",)),
    (24, "León", ("León",)),
    (25, "Lleida", ("Lleida",)),
    (26, "La Rioja", ("Logroño",)),
    (27, "Lugo", ("Lugo",)),
    (28, "Madrid", ("Madrid", "Alcalá de Henares", "Getafe", "Móstoles")),
    (29, "Málaga", ("Málaga", "Marbella")),
    (30, "Murcia", ("Murcia", "Cartagena")),
    (31, "Navarra", ("Pamplona",)),
    (32, "Ourense", ("Ourense",)),
    (33, "Asturias", ("Oviedo", "Gijón")),
    (34, "Palencia", ("Palencia",)),
    (35, "Las Palmas", ("Las Palmas de Gran Canaria",)),
    (36, "Pontevedra", ("Vigo", "Pontevedra")),
    (37, "Salamanca", ("Salamanca",)),
    (38, "Santa Cruz de Tenerife", ("Santa Cruz de Tenerife",)),
    (39, "Cantabria", ("Santander",)),
    (40, "Segovia", ("Segovia",)),
    (41, "Sevilla", ("Sevilla", "Dos Hermanas")),
    (42, "Soria", ("Soria",)),
    (43, "Tarragona", ("Tarragona", "Reus")),
    (44, "Teruel", ("Teruel",)),
    (45, "Toledo", ("Toledo", "Talavera de la Reina")),
    (46, "Valencia", ("València", "Gandia")),
    (47, "Valladolid", ("Valladolid",)),
    (48, "Bizkaia", ("Bilbao", "Barakaldo")),
    (49, "Zamora", ("Zamora",)),
    (50, "Zaragoza", ("Zaragoza",)),
    (51, "Ceuta", ("Ceuta",)),
    (52, "Melilla", ("Melilla",)),
)
ES_STREETS = (
    "Calle Mayor", "Avenida de la Constitución", "Calle Real", "Plaza de España", "Calle San Juan",
    "Avenida Diagonal", "Calle Gran Vía", "Paseo de la Castellana", "Calle del Carmen", "Rambla Nova",
    "Calle Alcalá", "Avenida de Andalucía", "Calle Colón", "Calle de la Paz", "Ronda de Sant Pere",
    "Calle Santiago", "Avenida del Puerto", "Calle Nueva", "Travesía del Sol", "Calle Iglesia",
)
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com", "correo.example.net")

UNICODE_GIVEN = ("JOSÉ", "MARÍA", "ÁNGEL", "RAÚL", "JESÚS", "MÓNICA", "ÍÑIGO", "INÉS", "NOÉ", "SOFÍA")
UNICODE_SURNAMES = ("NÚÑEZ", "PEÑA", "MUÑOZ", "GÓMEZ", "IBÁÑEZ", "ZÚÑIGA", "ORDÓÑEZ", "CASTAÑEDA", "BAÑUELOS")
UNICODE_EXTRAS = ("🚀", "🌮", "😀", "★", "✓", "Ñandú", "Zoë", "Ærø")
NFD_ACUTE = "\u0301"

# Products
PRODUCT_KINDS: tuple[tuple[str, str, str, str, str, float, float], ...] = (
    # (name head, unit, unit code, SAT code, SAT code name, min price, max price)
    ("Licencia", "Servicio", "E48", "43232408", "Software de desarrollo de aplicaciones web", 300, 25000),
    ("Consultoría", "Servicio", "E48", "80101500", "Servicios de consultoría de negocios", 500, 40000),
    ("Soporte", "Servicio", "E48", "81111800", "Servicios de sistemas y administración", 200, 15000),
    ("Curso", "Servicio", "E48", "86101700", "Servicios de capacitación vocacional", 150, 9000),
    ("Mantenimiento", "Servicio", "E48", "72101500", "Servicios de apoyo para la construcción", 250, 20000),
    ("Tornillo", "Pieza", "H87", "31161500", "Tornillos", 0.5, 40),
    ("Cable", "Pieza", "H87", "26121600", "Cables eléctricos", 15, 1500),
    ("Monitor", "Pieza", "H87", "43211900", "Monitores de computador", 1800, 12000),
    ("Papel", "Pieza", "H87", "14111500", "Papel de imprenta y papel de escribir", 45, 900),
    ("Café", "Pieza", "H87", "50201706", "Café", 60, 650),
)
PRODUCT_QUALIFIERS = (
    "Básico", "Estándar", "Premium", "Pro", "Anual", "Mensual", "Industrial", "Doméstico", "XL", "Compacto",
    "Plus", "Lite", "Reforzado", "Ecológico", "Express",
)
PRODUCT_DETAILS = (
    "incluye garantía de 12 meses", "entrega en 5 días hábiles", "con instalación", "sin instalación",
    "precio por unidad", "servicio remoto", "material certificado", "soporte en horario laboral",
)
ES_PRODUCT_HEADS = (
    "Reparación", "Instalación", "Horas de consultoría", "Licencia", "Cuota de mantenimiento",
    "Tornillería", "Cableado", "Pintura", "Material de oficina", "Transporte", "Formación", "Auditoría",
)
MX_ESTIMATE_STATUSES = ("Pending",) * 6 + ("Accepted", "Accepted", "Rejected", "Closed")
ES_ESTIMATE_STATUSES = ("pending",) * 14 + (
    "accepted", "accepted", "accepted", "rejected", "rejected", "closed",
)
# fmt: on

# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------

_CENT = Decimal("0.01")


def _rng(kind: str, seed: int) -> random.Random:
    """One RNG per generator: the same seed in two generators must not give correlated data."""
    return random.Random(f"{kind}:{seed}")


def _pick(rng: random.Random, seq: Sequence[Any]) -> Any:
    """``rng.choice`` without its Python-level rejection sampling: 3x faster on the hot path."""
    return seq[int(rng.random() * len(seq))]


def _below(rng: random.Random, k: int) -> int:
    return int(rng.random() * k)


def _range(rng: random.Random, start: int, stop: int) -> int:
    return start + int(rng.random() * (stop - start))


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def money(value: float | Decimal | str) -> Decimal:
    """Half-up to cents, the rounding every API here documents."""
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _money_float(value: float | Decimal | str) -> float:
    return float(money(value))


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return dt.date.fromordinal(_between(rng, start.toordinal(), end.toordinal()))


def _exact_positions(rng: random.Random, n: int, fraction: float) -> set[int]:
    return set(rng.sample(range(n), round(n * fraction))) if n and fraction > 0 else set()


def _defect_slots(rng: random.Random, n: int, fractions: dict[str, float]) -> dict[int, str]:
    """Disjoint, exactly sized sets of positions for the tax-id defects."""
    if any(not 0 <= f <= 1 for f in fractions.values()) or sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"defect fractions must be in [0, 1] and add up to at most 1: {fractions}")
    order = list(range(n))
    rng.shuffle(order)
    slots: dict[int, str] = {}
    start = 0
    for name, fraction in fractions.items():
        count = round(n * fraction)
        for i in order[start : start + count]:
            slots[i] = name
        start += count
    return slots


@functools.lru_cache(maxsize=8192)
def _slug(text: str) -> str:
    table = str.maketrans("ÁÉÍÓÚÜÑáéíóúüñ", "AEIOUUNaeiouun")
    return "".join(c for c in text.translate(table).lower() if c.isascii() and c.isalnum())


def _email(rng: random.Random, i: int, *parts: str) -> str:
    local = ".".join(p for p in (_slug(x) for x in parts) if p)[:40] or "cliente"
    return f"{local}.{i + 1}@{_pick(rng, EMAIL_DOMAINS)}"


def _verify(ok: bool, value: str) -> str:
    if not ok:
        raise RuntimeError(f"generator produced an invalid tax id: {value!r}")
    return value


def _unique(make: Callable[[], str], seen: set[str]) -> str:
    while True:
        value = make()
        if value not in seen:
            seen.add(value)
            return value


# --------------------------------------------------------------------------------------------------
# Tax ids
# --------------------------------------------------------------------------------------------------

_RFC_HOMO1 = "123456789ABCDEFGHIJKLMNPQRSTUV"
_RFC_HOMO2 = "123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
_RFC_CHECKS = "0123456789A"
_RFC_BLOCKED = getattr(mx_rfc, "_name_blacklist", frozenset())
_VOWELS = "AEIOU"
_COMPANY_STOPWORDS = frozenset("DE DEL LA LAS LOS EL Y SA CV RL SC AC SAPI S COMPANIA SOCIEDAD".split())


def _rfc_person_letters(given: str, surname1: str, surname2: str) -> str:
    internal = next((c for c in surname1[1:] if c in _VOWELS), "X")
    letters = surname1[0] + internal + surname2[0] + given[0]
    return letters[:3] + "X" if letters in _RFC_BLOCKED else letters


def _rfc_company_letters(name: str) -> str:
    words = [w for w in name.split() if w not in _COMPANY_STOPWORDS and w.isalpha()] or ["XXX"]
    letters = "".join(w[0] for w in words[:3])
    return (letters + words[0][1:] + "XXX")[:3]


def make_rfc(rng: random.Random, letters: str, date: dt.date) -> str:
    """Letters + YYMMDD + a 2-char homoclave + stdnum's check digit; verified with stdnum."""
    body = f"{letters}{date:%y%m%d}{_pick(rng, _RFC_HOMO1)}{_pick(rng, _RFC_HOMO2)}"
    value = body + mx_rfc.calc_check_digit(body)
    return _verify(mx_rfc.is_valid(value, validate_check_digits=True), value)


def _invalid_rfc(rng: random.Random, valid: str) -> str:
    """Same shape with a wrong check digit, or an impossible date (month 13, day 32...)."""
    if rng.random() < 0.5:
        wrong = _pick(rng, [c for c in _RFC_CHECKS if c != valid[-1]])
        return valid[:-1] + wrong
    k = len(valid) - 9  # start of YYMMDD
    return valid[: k + 2] + _pick(rng, ("13", "00", "19")) + _pick(rng, ("32", "00", "45")) + valid[k + 6 :]


def make_dni(rng: random.Random) -> str:
    digits = f"{_range(rng, 1_000_000, 80_000_000):08d}"
    value = digits + es_dni.calc_check_digit(digits)
    return _verify(es_nif.is_valid(value), value)


def make_nie(rng: random.Random) -> str:
    body = _pick(rng, "XXXYYZ") + f"{_range(rng, 0, 10_000_000):07d}"
    value = body + es_nie.calc_check_digit(body)
    return _verify(es_nif.is_valid(value), value)


def make_klm(rng: random.Random) -> str:
    """K (minors), L (residents abroad), M (foreigners without NIE): the DNI rule on 7 digits."""
    digits = f"{_range(rng, 0, 10_000_000):07d}"
    value = _pick(rng, "KLM") + digits + es_dni.calc_check_digit(digits)
    return _verify(es_nif.is_valid(value), value)


def make_cif(rng: random.Random, letter: str, province: int) -> str:
    """Letter + 2-digit province + 5 digits + check (letter for P/Q/R/S/N/W, digit otherwise)."""
    body = f"{letter}{province:02d}{_range(rng, 0, 100_000):05d}"
    digit, char = es_cif.calc_check_digits(body)
    check = char if letter in "PQRSNW" or body[1:3] == "00" else digit
    value = body + check
    return _verify(es_nif.is_valid(value), value)


def _invalid_nif(rng: random.Random, valid: str) -> str:
    """A wrong check character (70 %) or a malformed number (too short, stray letter)."""
    if rng.random() < 0.7:
        pool = "TRWAGMYFPDXBNJZSQVHLCKE" if valid[-1].isalpha() else "0123456789"
        if valid[0].isalpha() and valid[0] not in "XYZKLM":  # CIF: both forms of the check are valid
            valid_checks = es_cif.calc_check_digits(valid[:-1])
            pool = "".join(c for c in "0123456789ABCDEFGHIJ" if c not in valid_checks)
        return valid[:-1] + _pick(rng, [c for c in pool if c != valid[-1]])
    return _pick(rng, (valid[1:], valid[:4] + "O" + valid[5:], valid + "7"))


def tax_id_kind(tax_id: str | None) -> str | None:
    """``"person"`` / ``"company"`` for a valid, non-generic RFC or NIF; ``None`` otherwise.

    Mirrors the sync's rule: 13-char RFC or DNI/NIE/KLM → person; 12-char RFC or CIF → company.
    """
    value = (tax_id or "").strip().upper()
    if not value or value in GENERIC_TAX_IDS:
        return None
    if len(value) in (12, 13) and mx_rfc.is_valid(value, validate_check_digits=True):
        return "person" if len(value) == 13 else "company"
    if len(value) == 9 and es_nif.is_valid(value):
        return "company" if es_cif.is_valid(value) else "person"
    return None


# --------------------------------------------------------------------------------------------------
# Name defects
# --------------------------------------------------------------------------------------------------


def _unicode_name(rng: random.Random, name: str, upper: bool) -> str:
    """Swap one word for an accented/ñ one, and maybe add an emoji or a decomposed accent."""
    words = name.split()
    pool = UNICODE_SURNAMES if len(words) > 1 else UNICODE_GIVEN
    replacement = _pick(rng, pool + UNICODE_GIVEN)
    words[_below(rng, len(words))] = replacement if upper else replacement.title()
    roll = rng.random()
    if roll < 0.4:
        words.append(_pick(rng, UNICODE_EXTRAS))
    elif roll < 0.6:
        words[0] = _decomposed_accent(words[0])
    return " ".join(words)


def _decomposed_accent(word: str) -> str:
    """Put a combining acute (NFD) on the word's last plain vowel: looks like NFC, compares unequal."""
    for k in range(len(word) - 1, -1, -1):
        if word[k] in "AEIOUaeiou":
            return word[: k + 1] + NFD_ACUTE + word[k + 1 :]
    return word + "E" + NFD_ACUTE


def _long_name(rng: random.Random, name: str, pool: Sequence[str], length: int = 300) -> str:
    words = name.split()
    while len(" ".join(words)) < length + 20:
        words.insert(1, _pick(rng, pool))
    return " ".join(words)[:length].rstrip()


# --------------------------------------------------------------------------------------------------
# Facturama
# --------------------------------------------------------------------------------------------------


def _mx_address(rng: random.Random) -> dict[str, str | None]:
    state, places, low, high = _pick(rng, MX_STATES)
    municipality, locality = _pick(rng, places)
    zip_code = f"{_between(rng, low, high):02d}{_range(rng, 0, 1000):03d}"
    interior = _pick(rng, (None, None, "", "A", "B", "3", "12", "PISO 2", "LOCAL 5"))
    return {
        "Street": _pick(rng, MX_STREETS),
        "ExteriorNumber": str(_between(rng, 1, 9999)),
        "InteriorNumber": interior,
        "Neighborhood": _pick(rng, MX_NEIGHBORHOODS),
        "ZipCode": zip_code,
        "Locality": locality,
        "Municipality": municipality,
        "State": state,
        "Country": "MEX",
    }


def _mx_person(rng: random.Random, seen: set[str]) -> tuple[str, str]:
    given = _pick(rng, MX_GIVEN)
    names = given if rng.random() < 0.7 else f"{given} {_pick(rng, MX_GIVEN)}"
    s1, s2 = _pick(rng, MX_SURNAMES), _pick(rng, MX_SURNAMES)
    letters = _rfc_person_letters(given, s1, s2)
    born = (dt.date(1950, 1, 1), dt.date(2005, 12, 31))
    rfc = _unique(lambda: make_rfc(rng, letters, _random_date(rng, *born)), seen)
    return f"{names} {s1} {s2}", rfc


def _mx_company_name(rng: random.Random) -> str:
    words = [_pick(rng, MX_COMPANY_HEAD), _pick(rng, MX_COMPANY_CORE), _pick(rng, MX_COMPANY_TAIL)]
    return " ".join(w for w in words if w) + " " + _pick(rng, MX_COMPANY_SUFFIX)


def _mx_company(rng: random.Random, seen: set[str]) -> tuple[str, str]:
    name = _mx_company_name(rng)
    letters = _rfc_company_letters(name)
    founded = (dt.date(1970, 1, 1), dt.date(2024, 12, 31))
    rfc = _unique(lambda: make_rfc(rng, letters, _random_date(rng, *founded)), seen)
    return name, rfc


def _facturama_client(rng: random.Random, i: int, company: bool, seen: set[str]) -> Record:
    name, rfc = _mx_company(rng, seen) if company else _mx_person(rng, seen)
    address = _mx_address(rng)
    words = name.split()
    email = _email(rng, i, *(words[:2] if company else (words[0], words[-2])))
    return {
        "Email": email,
        "EmailOp1": _email(rng, i, "facturacion", words[0]) if rng.random() < 0.2 else None,
        "EmailOp2": None,
        "Address": address,
        "Rfc": rfc,
        "Name": name,
        "CfdiUse": _pick(rng, MX_CFDI_USE_COMPANY if company else MX_CFDI_USE_PERSON),
        "FiscalRegime": _pick(rng, MX_REGIME_COMPANY if company else MX_REGIME_PERSON),
        "TaxZipCode": address["ZipCode"],
        "TaxResidence": None,
        "NumRegIdTrib": None,
    }


def facturama_clients(
    n: int,
    seed: int,
    *,
    company_fraction: float = 0.4,
    no_rfc: float = 0.0,
    invalid_rfc: float = 0.0,
    generic_rfc: float = 0.0,
    duplicate_rfc: float = 0.0,
    unicode_names: float = 0.0,
    long_names: float = 0.0,
) -> list[Record]:
    """Facturama ``POST /Client`` bodies: persons (13-char RFC) and companies (12-char RFC)."""
    rng = _rng("facturama_clients", seed)
    companies = _exact_positions(rng, n, company_fraction)
    seen: set[str] = set()
    records = [_facturama_client(rng, i, i in companies, seen) for i in range(n)]
    defects = _defect_slots(
        rng, n, {"none": no_rfc, "invalid": invalid_rfc, "generic": generic_rfc, "duplicate": duplicate_rfc}
    )
    _apply_tax_defects(rng, records, defects, "Rfc", _mx_defect)
    _apply_name_defects(rng, records, unicode_names, long_names, _mx_rename)
    return records


def _mx_defect(rng: random.Random, record: Record, defect: str) -> None:
    if defect == "none":
        record["Rfc"] = ""
    elif defect == "invalid":
        record["Rfc"] = _invalid_rfc(rng, record["Rfc"])
    elif defect == "generic":
        record["Rfc"] = _pick(rng, MX_GENERIC_RFCS)
        if record["Rfc"] == "XEXX010101000":  # a foreign resident: SAT wants residence and tax id
            record.update(TaxResidence="USA", NumRegIdTrib=f"{_range(rng, 10**8, 10**9)}", CfdiUse="S01")


def _mx_rename(rng: random.Random, record: Record, kind: str) -> None:
    if kind == "unicode":
        record["Name"] = _unicode_name(rng, record["Name"], upper=True)
    else:
        record["Name"] = _long_name(rng, record["Name"], MX_GIVEN + MX_COMPANY_CORE)


def _apply_tax_defects(
    rng: random.Random,
    records: list[Record],
    defects: dict[int, str],
    key: str,
    apply: Callable[[random.Random, Record, str], None],
) -> None:
    """Apply the non-duplicate defects, then copy clean ids of the same kind onto the duplicates."""
    for i in sorted(defects):
        if defects[i] != "duplicate":
            apply(rng, records[i], defects[i])
    clean = [i for i in range(len(records)) if i not in defects]
    by_kind: dict[int, list[int]] = {}
    for i in clean:
        by_kind.setdefault(len(records[i][key]), []).append(i)
    for i in sorted(k for k, v in defects.items() if v == "duplicate"):
        pool = by_kind.get(len(records[i][key])) or clean
        if pool:
            records[i][key] = records[_pick(rng, pool)][key]


def _apply_name_defects(
    rng: random.Random,
    records: list[Record],
    unicode_fraction: float,
    long_fraction: float,
    rename: Callable[[random.Random, Record, str], None],
) -> None:
    """Lengthen first, then accent: a record drawn for both stays long *and* non-ASCII."""
    for i in sorted(_exact_positions(rng, len(records), long_fraction)):
        rename(rng, records[i], "long")
    for i in sorted(_exact_positions(rng, len(records), unicode_fraction)):
        rename(rng, records[i], "unicode")


def _product_name(rng: random.Random, head: str, i: int) -> str:
    name = f"{head} {_pick(rng, PRODUCT_QUALIFIERS)} {_between(rng, 1, 999)}"
    return name[:50]


def _price(rng: random.Random, low: float, high: float) -> Decimal:
    """Log-uniform between low and high, so cheap and expensive items both appear."""
    value = low * (high / low) ** rng.random()
    return max(money(value), _CENT)


def facturama_products(
    n: int, seed: int, *, sku_fraction: float = 0.9, sku_prefix: str = "SKU"
) -> list[Record]:
    """Facturama ``POST /Product`` bodies; SKUs (``IdentificationNumber``) unique, others ``""``/``None``."""
    rng = _rng("facturama_products", seed)
    with_sku = _exact_positions(rng, n, sku_fraction)
    records = []
    for i in range(n):
        head, unit, unit_code, code, code_name, low, high = _pick(rng, PRODUCT_KINDS)
        name = _product_name(rng, head, i)
        records.append(
            {
                "Unit": unit,
                "UnitCode": unit_code,
                "IdentificationNumber": f"{sku_prefix}-{i + 1:06d}"
                if i in with_sku
                else _pick(rng, ("", None)),
                "Name": name,
                "Description": f"{name}, {_pick(rng, PRODUCT_DETAILS)}",
                "Price": float(_price(rng, low, high)),
                "CodeProdServ": code,
                "CodeProdServName": code_name,
                "CuentaPredial": None,
                "ObjetoImp": "02",
                "TaxObject": "02",
                "Category": "GENERAL",
                "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}],
            }
        )
    return records


def _with_sku(products: list[Record], key: str) -> list[Record]:
    usable = [p for p in products if p.get(key)]
    if not usable:
        raise ValueError(f"estimates need products with a {key}")
    return usable


def _quantity(rng: random.Random) -> Decimal:
    if rng.random() < 0.8:
        return Decimal(_between(rng, 1, 20))
    return money(rng.uniform(0.25, 50))


def _facturama_item(rng: random.Random, product: Record) -> Record:
    quantity = _quantity(rng)
    price = money(product["Price"])
    subtotal = money(quantity * price)
    discount = money(subtotal * Decimal(_pick(rng, (5, 10, 15))) / 100) if rng.random() < 0.25 else Decimal(0)
    base = subtotal - discount
    tax = money(base * Decimal("0.16"))
    return {
        "ProductCode": product["CodeProdServ"],
        "IdentificationNumber": product["IdentificationNumber"],
        "Description": product["Name"],
        "Unit": product["Unit"],
        "UnitCode": product["UnitCode"],
        "Quantity": float(quantity),
        "UnitPrice": float(price),
        "Discount": float(discount),
        "Subtotal": float(subtotal),
        "Taxes": [
            {"Name": "IVA", "Rate": 0.16, "IsRetention": False, "Base": float(base), "Total": float(tax)}
        ],
        "Total": float(base + tax),
    }


_ESTIMATE_DAYS = (dt.date(2025, 1, 1), dt.date(2026, 6, 30))


def facturama_estimates(n: int, seed: int, *, clients: list[Record], products: list[Record]) -> list[Record]:
    """Estimate bodies (§9, assumed) for clients that carry ``Id`` and products that carry a SKU."""
    rng = _rng("facturama_estimates", seed)
    receivers = [c for c in clients if c.get("Id") and c.get("Rfc")] or [c for c in clients if c.get("Id")]
    if not receivers:
        raise ValueError("estimates need clients with an Id (create them first)")
    catalogue = _with_sku(products, "IdentificationNumber")
    records = []
    for i in range(n):
        client = _pick(rng, receivers)
        day = _random_date(rng, *_ESTIMATE_DAYS)
        when = dt.datetime.combine(day, dt.time(_between(rng, 8, 19), _below(rng, 60), _below(rng, 60)))
        items = [
            _facturama_item(rng, p) for p in rng.sample(catalogue, min(len(catalogue), _between(rng, 1, 10)))
        ]
        records.append(
            {
                "Folio": f"COT-{i + 1:05d}",
                "Date": when.strftime("%Y-%m-%dT%H:%M:%S"),
                "ExpirationDate": f"{day + dt.timedelta(days=30):%Y-%m-%d}T00:00:00",
                "Currency": "MXN",
                "Status": _pick(rng, MX_ESTIMATE_STATUSES),
                "Observations": _pick(
                    rng, ("", "", "Precios sujetos a cambio sin previo aviso.", "Vigencia 30 días.")
                ),
                "Receiver": {"Id": client["Id"], "Rfc": client["Rfc"], "Name": client["Name"]},
                "Items": items,
            }
        )
    return records


# --------------------------------------------------------------------------------------------------
# FacturaDirecta
# --------------------------------------------------------------------------------------------------


def _es_address(rng: random.Random) -> tuple[int, dict[str, str]]:
    code, province, cities = _pick(rng, ES_PROVINCES)
    line2 = _pick(
        rng, ("", "", f"{_between(rng, 1, 9)}º {_pick(rng, 'ABCD')}", "Bajo", f"Local {_between(rng, 1, 20)}")
    )
    return code, {
        "line1": f"{_pick(rng, ES_STREETS)}, {_between(rng, 1, 250)}",
        "line2": line2,
        "city": _pick(rng, cities),
        "province": province,
        "zipcode": f"{code:02d}{_range(rng, 0, 1000):03d}",
        "country": "ES",
    }


def _es_phone(rng: random.Random) -> str:
    return f"{_pick(rng, '6679')}{_range(rng, 0, 100_000_000):08d}"


def _es_person_tax_id(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.8:
        return make_dni(rng)
    return make_nie(rng) if roll < 0.96 else make_klm(rng)


def _weighted_cif_form(rng: random.Random) -> tuple[str, str]:
    letters, suffixes, weights = zip(*ES_CIF_FORMS, strict=True)
    k = rng.choices(range(len(letters)), weights=weights)[0]
    return letters[k], suffixes[k]


def _es_company_name(rng: random.Random, suffix: str) -> str:
    core = f"{_pick(rng, ES_COMPANY_HEAD)} {_pick(rng, ES_COMPANY_CORE)}"
    if rng.random() < 0.3:
        core = f"{core} {_pick(rng, ES_SURNAMES)}"
    if suffix in ("Asociacion", "Fundacion", "Comunidad de Propietarios", "Ayuntamiento", "Organismo"):
        return f"{suffix} {core}"
    return f"{core} {suffix}"


def _facturadirecta_client(rng: random.Random, i: int, company: bool, seen: set[str]) -> Record:
    province_code, address = _es_address(rng)
    record: Record = {"legalType": "J" if company else "F"}
    if company:
        letter, suffix = _weighted_cif_form(rng)
        name = _es_company_name(rng, suffix)
        record["name"] = name
        record["taxCode"] = _unique(lambda: make_cif(rng, letter, province_code), seen)
        record["tradeName"] = " ".join(name.split()[:2])
        email = _email(rng, i, *name.split()[:2])
    else:
        given = _pick(rng, ES_GIVEN)
        surname = f"{_pick(rng, ES_SURNAMES)} {_pick(rng, ES_SURNAMES)}"
        record["personName"] = given
        record["personSurname"] = surname
        record["taxCode"] = _unique(lambda: _es_person_tax_id(rng), seen)
        record["tradeName"] = ""
        email = _email(rng, i, given, surname.split()[0])
    record.update(
        address=address,
        email=email,
        phone=_es_phone(rng),
        language="es",
        billing={"currency": "EUR"},
        customAttributes=[],
    )
    return record


def facturadirecta_clients(
    n: int,
    seed: int,
    *,
    company_fraction: float = 0.4,
    no_rfc: float = 0.0,
    invalid_rfc: float = 0.0,
    generic_rfc: float = 0.0,
    duplicate_rfc: float = 0.0,
    unicode_names: float = 0.0,
    long_names: float = 0.0,
) -> list[Record]:
    """FacturaDirecta client records: F (DNI/NIE/KLM, personName + personSurname) and J (CIF, name).

    The defect options keep Facturama's names so scenarios can pass one option dict to both.
    """
    rng = _rng("facturadirecta_clients", seed)
    companies = _exact_positions(rng, n, company_fraction)
    seen: set[str] = set()
    records = [_facturadirecta_client(rng, i, i in companies, seen) for i in range(n)]
    defects = _defect_slots(
        rng, n, {"none": no_rfc, "invalid": invalid_rfc, "generic": generic_rfc, "duplicate": duplicate_rfc}
    )
    _apply_es_defects(rng, records, defects)
    _apply_name_defects(rng, records, unicode_names, long_names, _es_rename)
    return records


def _apply_es_defects(rng: random.Random, records: list[Record], defects: dict[int, str]) -> None:
    for i in sorted(defects):
        record, defect = records[i], defects[i]
        if defect == "none":
            record["taxCode"] = ""
        elif defect == "invalid":
            record["taxCode"] = _invalid_nif(rng, record["taxCode"])
        elif defect == "generic":
            record["taxCode"] = _pick(rng, ES_GENERIC_NIFS)
    clean = [i for i in range(len(records)) if i not in defects]
    by_type: dict[str, list[int]] = {}
    for i in clean:
        by_type.setdefault(records[i]["legalType"], []).append(i)
    for i in sorted(k for k, v in defects.items() if v == "duplicate"):
        pool = by_type.get(records[i]["legalType"]) or clean
        if pool:
            records[i]["taxCode"] = records[_pick(rng, pool)]["taxCode"]


def _es_rename(rng: random.Random, record: Record, kind: str) -> None:
    key = "name" if record["legalType"] == "J" else "personSurname"
    if kind == "unicode":
        record[key] = _unicode_name(rng, record[key], upper=False)
        if key == "personSurname" and rng.random() < 0.5:
            record["personName"] = _pick(rng, UNICODE_GIVEN).title()
    else:
        record[key] = _long_name(rng, record[key], ES_SURNAMES + ES_COMPANY_CORE)


def facturadirecta_products(
    n: int, seed: int, *, code_fraction: float = 0.9, code_prefix: str = "P"
) -> list[Record]:
    """FacturaDirecta product records (§8, assumed); money as 2-decimal strings."""
    rng = _rng("facturadirecta_products", seed)
    with_code = _exact_positions(rng, n, code_fraction)
    records = []
    for i in range(n):
        head = _pick(rng, ES_PRODUCT_HEADS)
        _, _, _, _, _, low, high = _pick(rng, PRODUCT_KINDS)
        price = _price(rng, max(low / 18, 0.05), high / 18)  # EUR is roughly 18-20 MXN
        name = _product_name(rng, head, i)
        records.append(
            {
                "productCode": f"{code_prefix}-{i + 1:06d}" if i in with_code else "",
                "name": name,
                "description": f"{name}, {_pick(rng, PRODUCT_DETAILS)}",
                "price": f"{price}",
                "purchasePrice": f"{money(price * Decimal('0.6'))}",
                "discountRate": "0.00",
                "applyTax1": "true",
                "applyTax2": "false",
                "stockEnabled": "false",
                "customAttributes": [],
            }
        )
    return records


def _facturadirecta_line(rng: random.Random, product: Record) -> Record:
    quantity = _quantity(rng)
    return {
        "productCode": product["productCode"],
        "description": product["name"],
        "quantity": f"{quantity.normalize():f}",
        "unitPrice": product["price"],
        "discountRate": _pick(rng, ("0.00",) * 7 + ("5.00", "10.00", "15.00")),
        "applyTax1": "true",
    }


def facturadirecta_estimates(
    n: int, seed: int, *, clients: list[Record], products: list[Record]
) -> list[Record]:
    """Estimate records (§9, assumed) for clients that carry ``id`` and products with a ``productCode``."""
    rng = _rng("facturadirecta_estimates", seed)
    targets = [c for c in clients if c.get("id")]
    if not targets:
        raise ValueError("estimates need clients with an id (create them first)")
    catalogue = _with_sku(products, "productCode")
    records = []
    for i in range(n):
        client = _pick(rng, targets)
        day = _random_date(rng, *_ESTIMATE_DAYS)
        lines = [
            _facturadirecta_line(rng, p)
            for p in rng.sample(catalogue, min(len(catalogue), _between(rng, 1, 10)))
        ]
        records.append(
            {
                "client": {"id": client["id"]},
                "estimateDate": f"{day:%Y%m%d}",
                "currency": "EUR",
                "status": _pick(rng, ES_ESTIMATE_STATUSES),
                "subject": f"Presupuesto {i + 1:05d} - {lines[0]['description']}",
                "notes": _pick(rng, ("", "", "Validez de la oferta: 30 días.", "Portes incluidos.")),
                "tax1": {"name": "IVA", "rate": "21.00"},
                "estimateLines": lines,
            }
        )
    return records


# --------------------------------------------------------------------------------------------------
# Clientify
# --------------------------------------------------------------------------------------------------


def _crm_address(street: str, city: str, state: str, country: str, postal_code: str) -> Record:
    return {
        "street": street,
        "city": city,
        "state": state,
        "country": country,
        "postal_code": postal_code,
        "type": 3,
    }


def _crm_company_name(name: str) -> str:
    """How people type a razón social into a CRM: title case, legal form kept upper-case."""
    words = name.title().split()
    fixes = {
        "Sa": "SA",
        "De": "de",
        "Cv": "CV",
        "Rl": "RL",
        "Sapi": "SAPI",
        "Sc": "SC",
        "Ac": "AC",
        "Del": "del",
    }
    return " ".join([words[0], *(fixes.get(w, w) for w in words[1:])]) if words else name


def _overlap_facturama(record: Record) -> tuple[str, Record] | None:
    rfc = record.get("Rfc") or ""
    kind = tax_id_kind(rfc)
    if kind is None:
        return None
    a = record.get("Address") or {}
    street = " ".join(x for x in (a.get("Street"), a.get("ExteriorNumber"), a.get("InteriorNumber")) if x)
    addresses = [
        _crm_address(street, a.get("Locality") or "", a.get("State") or "", "MX", a.get("ZipCode") or "")
    ]
    if kind == "company":
        return "companies", {
            "name": _crm_company_name(record["Name"]),
            "taxpayer_identification_number": rfc,
            "email": record.get("Email") or "",
            "addresses": addresses,
        }
    words = record["Name"].title().split()
    split = max(1, len(words) - 2)
    return "contacts", {
        "first_name": " ".join(words[:split]),
        "last_name": " ".join(words[split:]),
        "email": record.get("Email") or "",
        "taxpayer_identification_number": rfc,
        "addresses": addresses,
    }


def _overlap_facturadirecta(record: Record) -> tuple[str, Record] | None:
    tax_id = record.get("taxCode") or ""
    kind = tax_id_kind(tax_id)
    if kind is None:
        return None
    a = record.get("address") or {}
    street = ", ".join(x for x in (a.get("line1"), a.get("line2")) if x)
    addresses = [_crm_address(street, a.get("city", ""), a.get("province", ""), "ES", a.get("zipcode", ""))]
    common = {"email": record.get("email") or "", "phone": record.get("phone") or ""}
    if kind == "company":
        name = record.get("name") or record.get("tradeName") or ""
        return "companies", {
            "name": name,
            "taxpayer_identification_number": tax_id,
            **common,
            "addresses": addresses,
        }
    return "contacts", {
        "first_name": record.get("personName") or "",
        "last_name": record.get("personSurname") or "",
        **common,
        "taxpayer_identification_number": tax_id,
        "addresses": addresses,
    }


def clientify_overlap(
    platform: str, customers: list[Record], fraction: float, seed: int
) -> list[tuple[str, Record]]:
    """Clientify bodies for the *same* customers (matched by tax id, unlinked: no custom fields).

    ``platform`` is ``"facturama"`` or ``"facturadirecta"``. Customers with no, invalid or generic tax
    ids are skipped, and a duplicated tax id yields one CRM record. ``round(fraction * eligible)``
    customers are picked at seeded positions and returned in input order as
    ``("contacts" | "companies", body)``.
    """
    converters = {"facturama": _overlap_facturama, "facturadirecta": _overlap_facturadirecta}
    if platform not in converters:
        raise ValueError(f"platform must be one of {sorted(converters)}")
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    convert = converters[platform]
    eligible: list[tuple[str, Record]] = []
    seen: set[str] = set()
    for record in customers:
        pair = convert(record)
        if pair is not None and pair[1]["taxpayer_identification_number"] not in seen:
            seen.add(pair[1]["taxpayer_identification_number"])
            eligible.append(pair)
    rng = _rng(f"clientify_overlap:{platform}", seed)
    picked = sorted(rng.sample(range(len(eligible)), round(len(eligible) * fraction)))
    return [eligible[i] for i in picked]


def _check_country(country: str) -> str:
    country = country.upper()
    if country not in ("MX", "ES"):
        raise ValueError("country must be 'MX' or 'ES'")
    return country


def clientify_contacts(n: int, seed: int, *, country: str = "MX") -> list[Record]:
    """Clientify-native contacts (``POST /v1/contacts/``) with valid, unique person tax ids."""
    country = _check_country(country)
    rng = _rng(f"clientify_contacts:{country}", seed)
    seen: set[str] = set()
    records = []
    for i in range(n):
        if country == "MX":
            full, tax_id = _mx_person(rng, seen)
            words = full.title().split()
            first, last = " ".join(words[:-2]), " ".join(words[-2:])
            a = _mx_address(rng)
            address = _crm_address(
                f"{a['Street']} {a['ExteriorNumber']}",
                a["Locality"] or "",
                a["State"] or "",
                "MX",
                a["ZipCode"] or "",
            )
            phone = f"+52{_range(rng, 10**9, 10**10)}"
        else:
            first = _pick(rng, ES_GIVEN)
            last = f"{_pick(rng, ES_SURNAMES)} {_pick(rng, ES_SURNAMES)}"
            tax_id = _unique(lambda: _es_person_tax_id(rng), seen)
            _, a = _es_address(rng)
            address = _crm_address(a["line1"], a["city"], a["province"], "ES", a["zipcode"])
            phone = f"+34{_es_phone(rng)}"
        records.append(
            {
                "first_name": first,
                "last_name": last,
                "email": _email(rng, i, first, last.split()[0]),
                "phone": phone,
                "status": _pick(rng, ("cold-lead", "warm-lead", "hot-lead", "client", "client")),
                "taxpayer_identification_number": tax_id,
                "country": country,
                "addresses": [address],
            }
        )
    return records


def clientify_companies(n: int, seed: int, *, country: str = "MX") -> list[Record]:
    """Clientify-native companies (``POST /v1/companies/``) with valid, unique company tax ids."""
    country = _check_country(country)
    rng = _rng(f"clientify_companies:{country}", seed)
    seen: set[str] = set()
    records = []
    for i in range(n):
        if country == "MX":
            name, tax_id = _mx_company(rng, seen)
            name = _crm_company_name(name)
            a = _mx_address(rng)
            address = _crm_address(
                f"{a['Street']} {a['ExteriorNumber']}",
                a["Locality"] or "",
                a["State"] or "",
                "MX",
                a["ZipCode"] or "",
            )
            phone = f"+52{_range(rng, 10**9, 10**10)}"
        else:
            letter, suffix = _weighted_cif_form(rng)
            name = _es_company_name(rng, suffix)
            code, a = _es_address(rng)
            tax_id = _unique(lambda: make_cif(rng, letter, code), seen)  # noqa: B023 - called at once
            address = _crm_address(a["line1"], a["city"], a["province"], "ES", a["zipcode"])
            phone = f"+34{_es_phone(rng)}"
        records.append(
            {
                "name": name,
                "taxpayer_identification_number": tax_id,
                "email": _email(rng, i, *name.split()[:2]),
                "phone": phone,
                "addresses": [address],
            }
        )
    return records


def clientify_products(n: int, seed: int, *, sku_prefix: str = "CRM") -> list[Record]:
    """Clientify-native products (``POST /v1/products/``): unique SKU, price as a decimal string."""
    rng = _rng("clientify_products", seed)
    records = []
    for i in range(n):
        head, _, _, _, _, low, high = _pick(rng, PRODUCT_KINDS)
        name = _product_name(rng, head, i)
        records.append(
            {
                "name": name,
                "sku": f"{sku_prefix}-{i + 1:06d}",
                "price": f"{_price(rng, low, high)}",
                "description": f"{name}, {_pick(rng, PRODUCT_DETAILS)}",
            }
        )
    return records
