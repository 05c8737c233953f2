"""eqbench's zoo: EP models written outside eqbench, against its public contract only (`eqbench.EnergyModel`), each
with the verdict that theory expects of every claim (../zoo.yaml). The kit (`eqbench check`) is tested on them: a
correct model must never fail, a broken one must never pass — except the class the theorem cannot see, documented
as such. See ../README.md.
"""
