"""Every public function of the package is annotated: each name in a module's `__all__` (functions, and the
public methods of classes, `__init__` included) and every command's entry points (`add_arguments`, `run`) has a
type hint on each parameter and on its return. The count is printed, so a report can quote it."""

import importlib
import inspect
import pkgutil
import typing

import blendgan


def public_functions():
    """{qualified name: function} of the package's public API."""
    found = {}
    names = ["blendgan"] + [m.name for m in pkgutil.walk_packages(blendgan.__path__, "blendgan.")]
    for module_name in names:
        if module_name.endswith("__main__"):
            continue  # importing it runs the command line
        module = importlib.import_module(module_name)
        public = list(getattr(module, "__all__", ()))
        if module_name.startswith("blendgan.cli.") and hasattr(module, "run") and hasattr(module, "add_arguments"):
            public += ["add_arguments", "run"]
        for name in public:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
            elif inspect.isclass(obj) and obj.__module__.startswith("blendgan") and typing.Protocol not in obj.__mro__:
                for attr, member in vars(obj).items():
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if inspect.isfunction(member) and (attr == "__init__" or not attr.startswith("_")):
                        found[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = member
    return found


def missing_hints(function):
    """Names of the parameters without a hint ('return' for the return value)."""
    signature = inspect.signature(function)
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.annotation is inspect.Parameter.empty
    ]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_function_has_type_hints():
    functions = public_functions()
    assert len(functions) > 150  # the scan found the API (the pipeline, the loaders, the jobs, the commands)
    assert "blendgan.pipeline.core.BlendGAN.stylize" in functions and "blendgan.cli.stylize.run" in functions
    missing = {name: hints for name, f in sorted(functions.items()) if (hints := missing_hints(f))}
    print(f"{len(functions)} public functions, {len(functions) - len(missing)} fully annotated")
    assert not missing, f"{len(missing)} of {len(functions)} public functions lack type hints: {missing}"


def test_the_check_finds_a_missing_hint():
    def annotated(a: int, *args, b: str = "", **kwargs) -> None: ...

    def bare(a, b: int = 0): ...

    assert missing_hints(annotated) == []
    assert missing_hints(bare) == ["a", "return"]
