from conda import not_provided

touch = not_provided("conda.gateways.disk.update.touch")
