"""The package's layering (docs/architecture.md): each module imports only from its own layer or the ones below,
no two modules import each other in a cycle, and no module imports another module's private (underscore) names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import shelm

PACKAGE = Path(shelm.__file__).parent

# Lowest first. A module may import from its own layer and every layer before it.
LAYERS = [
    (
        "base",
        [
            "shelm",
            "shelm.errors",
            "shelm.precision",
            "shelm.files",
            "shelm.progress",
            "shelm.registry",
            "shelm.info_keys",
            "shelm.probe",
        ],
    ),
    ("settings", ["shelm.config"]),
    ("environments", ["shelm.envs"]),
    ("frozen side", ["shelm.memory"]),
    ("trainable side", ["shelm.agents"]),
    ("acting", ["shelm.acting"]),
    ("training", ["shelm.rollout", "shelm.runs", "shelm.tracking", "shelm.ppo", "shelm.dreamer", "shelm.trainers"]),
    ("using a run", ["shelm.evaluate", "shelm.inspect"]),
    ("many runs", ["shelm.experiments"]),
    ("python api", ["shelm.api"]),
    ("command", ["shelm.cli"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, index = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    assert index >= 0, f"{module} belongs to no layer of docs/architecture.md"
    return index


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported shelm module, names taken from it) for every import in the file, at any depth."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shelm"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*submodule.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*submodule.split(".")) / "__init__.py"
                ).exists()
                found.append((submodule, []) if is_module else (node.module, [alias.name]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.startswith("shelm")]
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def test_every_import_goes_to_the_same_or_a_lower_layer():
    upward = []
    for module, path in MODULES.items():
        for target, _ in imports(path):
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target}")
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = {module: {t for t, _ in imports(path) if t in MODULES and t != module} for module, path in MODULES.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{module} imports {target}.{name}"
        for module, path in MODULES.items()
        for target, names in imports(path)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not private, "\n".join(private)


def test_import_shelm_imports_no_module_and_lends_the_api_lazily():
    """`import shelm` stays cheap: the package lends `shelm.api`'s names (importing them by module name, which the
    checks above cannot see, so this test guards it) only when one is first asked for."""
    code = (
        "import sys, shelm\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('shelm.'))\n"
        "import shelm.api\n"
        "print(loaded, shelm.train is shelm.api.train, shelm.load is shelm.api.load, 'TrainedAgent' in dir(shelm))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True", "True", "True"]


REPOSITORY = PACKAGE.parent
SCRIPTS = [*(REPOSITORY / "benchmarks").glob("*.py"), *(REPOSITORY / "experiments").glob("*.py")]


def test_the_memory_builds_no_env_and_the_agent_registry_knows_no_suite():
    """Memories read what they need of the environment from the run's probe (`shelm.probe`), and settings resolve
    from what the suites declare (`shelm.envs.info_keys`): neither imports an environment module."""
    into_envs = [
        f"{module} imports {target}"
        for module, path in MODULES.items()
        if module == "shelm.memory" or module.startswith("shelm.memory.")
        for target, _ in imports(path)
        if target == "shelm.envs" or target.startswith("shelm.envs.")
    ]
    assert not into_envs, "\n".join(into_envs)
    suites = [target for target, _ in imports(MODULES["shelm.agents"]) if target.startswith("shelm.envs.")]
    assert not suites, f"shelm.agents imports {suites}"


def test_no_code_compares_trainer_names():
    """What an agent's runs can do is its trainer object's to say (`shelm.trainers`); nothing outside the trainer
    registry compares an `AgentSpec.trainer` name, or any name with 'ppo'."""
    comparison = re.compile(r"trainer\s*[!=]=|[!=]=\s*['\"]ppo['\"]|['\"]ppo['\"]\s*[!=]=|in\s*\(\s*['\"]ppo['\"]")
    found = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for path in [*MODULES.values(), *SCRIPTS]
        if path != MODULES["shelm.trainers"]
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if comparison.search(line)
    ]
    assert not found, "\n".join(found)


def test_runs_start_in_one_place():
    """The steps that start a run (check, create the run directory, save config.json, train) are written once, in
    `RunPlan.start`: no other module or script creates a run directory or writes a run's config."""
    starters = {"create_run_dir", "save_run_config"}
    found = []
    for path in [*MODULES.values(), *SCRIPTS]:
        if path in (MODULES["shelm.trainers"], MODULES["shelm.runs"]):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in starters:
                    found.append(f"{path.relative_to(REPOSITORY)}:{node.lineno} calls {name}")
    assert not found, "\n".join(found)


def test_benchmarks_and_experiment_scripts_share_code_only_through_the_package():
    """A script in benchmarks/ imports no script of experiments/ and the other way round (each folder's scripts
    import their neighbours by name): what both need, such as a peer's recipe, lives in the package."""
    folders = {
        folder: {path.stem for path in (REPOSITORY / folder).glob("*.py")} for folder in ("benchmarks", "experiments")
    }
    crossing = []
    for path in SCRIPTS:
        others = folders["experiments" if path.parent.name == "benchmarks" else "benchmarks"]
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            crossing += [f"{path.relative_to(REPOSITORY)} imports {name}" for name in names if name in others]
    assert not crossing, "\n".join(crossing)
